"""Instructions per operation with valgrind's callgrind, beside CPU-time medians.

A suite that supports ``--icount`` defines ``icount(quick) -> Icount`` (or a list of
them, one table each, scenario names unique across them): named
scenarios, each a factory that sets up and returns ``loop(n)`` running ``n``
operations. For each scenario the runner starts two fresh processes under
``valgrind --tool=callgrind`` (``python -m benchmarks._icount <suite> <name> <n>``),
one running N1 operations and one N2, and reports (count(N2) - count(N1)) / (N2 - N1):
set-up, imports and interpreter start cancel out, and the figure is the same from run
to run whatever else the machine is doing. The CPU-time column is the median of
interleaved in-process runs of the same loops (``time.process_time``).
"""

from __future__ import annotations

import gc
import importlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._harness import Table

ROOT = Path(__file__).resolve().parent.parent
Loop = Callable[[int], object]


@dataclass
class Icount:
    """What a suite measures in instructions.

    ``baseline`` (optional) is the scenario the others add to (bare Starlette), and
    ``reference`` the one every ratio is taken against (ffrtmp's own), unless
    ``references`` names another for a scenario (e.g. ffrtmp at the same sampling).
    """

    title: str
    unit: str
    scenarios: dict[str, Callable[[], Loop]]
    reference: str
    baseline: str | None = None
    references: dict[str, str] = field(default_factory=dict)
    #: add a column baseline / scenario (the throughput ratio of a CPU-bound server)
    capacity: bool = False
    #: what the ratio column is taken against, for its header
    versus: str = "ffrtmp"
    n: tuple[int, int] = (200, 1200)
    notes: list[str] = field(default_factory=list)


class ValgrindMissing(RuntimeError):
    """valgrind is not installed: no instruction counts."""


def valgrind() -> str:
    path = shutil.which("valgrind")
    if path is None:
        raise ValgrindMissing(
            "--icount needs valgrind (callgrind), which is not on PATH: install it "
            "(Debian/Ubuntu: apt-get install valgrind) or run without --icount"
        )
    return path


_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def instructions(suite: str, scenario: str, n: int, quick: bool) -> int:
    """Instructions callgrind counts for a fresh process running ``n`` operations."""
    with tempfile.TemporaryDirectory(prefix="ffrtmp-icount-") as tmp:
        command = [
            valgrind(),
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            "-m",
            "benchmarks._icount",
            suite,
            scenario,
            str(n),
            *(["--quick"] if quick else []),
        ]
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False
        )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(
            f"callgrind run of {suite}/{scenario} ({n} ops) failed with {done.returncode}: "
            f"{done.stderr[-2000:]}"
        )
    return int(found.group(1))


def per_op(suite: str, scenario: str, n: tuple[int, int], quick: bool) -> float:
    n1, n2 = n
    return (instructions(suite, scenario, n2, quick) - instructions(suite, scenario, n1, quick)) / (
        n2 - n1
    )


def cpu_medians(
    scenarios: dict[str, Callable[[], Loop]], *, number: int, repeat: int
) -> dict[str, float]:
    """Median CPU seconds per operation of each scenario, runs interleaved."""
    loops = {name: make() for name, make in scenarios.items()}
    for loop in loops.values():
        loop(max(1, number // 10))  # warm up
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeat):
        for name, loop in loops.items():
            gc.collect()
            start = time.process_time()
            loop(number)
            samples[name].append((time.process_time() - start) / number)
    return {name: statistics.median(s) for name, s in samples.items()}


def table(suite: str, spec: Icount, quick: bool) -> Table:
    counts = {name: per_op(suite, name, spec.n, quick) for name in spec.scenarios}
    cpu = cpu_medians(spec.scenarios, number=spec.n[1], repeat=3 if quick else 7)
    base = counts[spec.baseline] if spec.baseline else 0.0
    base_cpu = cpu[spec.baseline] if spec.baseline else 0.0
    if spec.baseline:
        columns = [
            "scenario",
            f"instructions/{spec.unit}",
            "added instructions",
            f"added vs {spec.versus}",
            f"CPU µs/{spec.unit} (median)",
            "added CPU µs",
        ]
    else:
        columns = [
            "scenario",
            f"instructions/{spec.unit}",
            f"vs {spec.versus}",
            f"CPU µs/{spec.unit} (median)",
        ]
    if spec.capacity:
        columns.append("throughput vs bare")
    out = Table(spec.title, columns)
    for name, count in counts.items():
        extra = [f"{base / count:.3f}x"] if spec.capacity else []
        ref = counts[spec.references.get(name, spec.reference)] - base
        if spec.baseline and name == spec.baseline:
            out.add(name, f"{count:,.0f}", "—", "—", cpu[name] * 1e6, "—", *extra)
        elif spec.baseline:
            added = count - base
            out.add(
                name,
                f"{count:,.0f}",
                f"{added:,.0f}",
                f"{added / ref:.3f}x",
                cpu[name] * 1e6,
                (cpu[name] - base_cpu) * 1e6,
                *extra,
            )
        else:
            out.add(name, f"{count:,.0f}", f"{count / ref:.3f}x", cpu[name] * 1e6, *extra)
    n1, n2 = spec.n
    out.notes.append(
        f"instructions: valgrind --tool=callgrind, (count for {n2:,} - count for {n1:,}) / "
        f"{n2 - n1:,}, each count from a fresh process (identical from run to run); CPU "
        f"time: median of {3 if quick else 7} interleaved in-process runs of {n2:,} "
        "(process_time, a machine shared with other work: the instruction ratios are the "
        "headline)"
    )
    out.notes += spec.notes
    return out


def main(argv: list[str]) -> int:
    """Child process: run ``n`` operations of one scenario."""
    suite, scenario, n = argv[0], argv[1], int(argv[2])
    module = importlib.import_module(f"benchmarks.suite_{suite}")
    spec = next(s for s in specs(module, "--quick" in argv) if scenario in s.scenarios)
    spec.scenarios[scenario]()(n)
    return 0


def specs(module: object, quick: bool) -> list[Icount]:
    """A suite's ``icount(quick)``: one Icount, or a list of them (one table each)."""
    found = module.icount(quick)  # type: ignore[attr-defined]
    return found if isinstance(found, list) else [found]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
