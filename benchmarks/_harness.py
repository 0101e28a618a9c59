"""Timing helpers and the table type every suite returns.

Rules every suite follows: each scenario is measured next to its comparison in
the same process run, we report medians of several repeats, and ratios are the
headline (absolute times drift on a shared, noisy machine).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


class MissingTool(RuntimeError):
    """A program a suite needs (wrk, valgrind) is not installed; the message says which."""


@dataclass
class Table:
    """One Markdown table: a title, column names, rows of cells and notes below it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)} columns")
        self.rows.append([_cell(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        widths = [
            max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
            for i, h in enumerate(self.columns)
        ]
        out = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.columns, widths, strict=True))]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        out += [f"  * {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def median_per_call(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    fn()  # warm up caches, lazy imports, first-call initialisation
    samples = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def amedian_per_call(fn: Callable[[], Awaitable[object]], *, number: int, repeat: int = 5) -> float:
    """:func:`median_per_call` for a coroutine function, all runs in one event loop."""

    async def runs() -> float:
        await fn()
        samples = []
        for _ in range(repeat):
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                await fn()
            samples.append((time.perf_counter() - start) / number)
        return statistics.median(samples)

    return asyncio.run(runs())


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], *, number: int, repeat: int = 7
) -> dict[str, float]:
    """Median seconds per call for each candidate, measured round-robin.

    Interleaving the candidates' runs spreads the machine's noise over all of
    them, so the ratios between them are fairer than back-to-back blocks.
    """
    for fn in candidates.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(s) for name, s in samples.items()}


def ainterleaved_samples(
    candidates: dict[str, Callable[[], Awaitable[object]]],
    *,
    number: int,
    repeat: int = 7,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of every run of each coroutine candidate, round-robin in one loop.

    Keeping every sample lets a table show the minimum (the least disturbed run) beside
    the median on a shared, noisy machine.
    """

    async def runs() -> dict[str, list[float]]:
        for fn in candidates.values():
            for _ in range(warmup):
                await fn()
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(repeat):
            for name, fn in candidates.items():
                gc.collect()
                start = time.perf_counter()
                for _ in range(number):
                    await fn()
                samples[name].append((time.perf_counter() - start) / number)
        return samples

    return asyncio.run(runs())


def ainterleaved_medians(
    candidates: dict[str, Callable[[], Awaitable[object]]], *, number: int, repeat: int = 7
) -> dict[str, float]:
    """:func:`interleaved_medians` for coroutine functions, all in one event loop."""
    samples = ainterleaved_samples(candidates, number=number, repeat=repeat)
    return {name: statistics.median(s) for name, s in samples.items()}
