"""``python -m benchmarks [suite ...] [--quick] [--write] [--icount]``."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import platform
import re
import sys
from pathlib import Path

from benchmarks import _icount
from benchmarks._harness import MissingTool, Table

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def available_suites() -> list[str]:
    return sorted(p.stem.removeprefix("suite_") for p in Path(__file__).parent.glob("suite_*.py"))


def write_section(suite: str, tables: list[Table], before: str | None = None) -> None:
    """Replace the suite's marked section of docs/benchmarks.md; a new one goes just
    before section ``before`` if given and present, else at the end."""
    start, end = f"<!-- bench:{suite}:start -->", f"<!-- bench:{suite}:end -->"
    command = suite.replace("-icount", " --icount")
    stamp = (
        f"_Measured {dt.date.today().isoformat()} with `python -m benchmarks {command} --write` "
        f"on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}._\n"
    )
    body = "\n".join([start, stamp, *(t.markdown() for t in tables), end])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text)
    elif before and f"<!-- bench:{before}:start -->" in text:
        mark = f"<!-- bench:{before}:start -->"
        text = text.replace(mark, body + "\n\n" + mark, 1)
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    suites = available_suites()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(suites)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument(
        "--icount",
        action="store_true",
        help="instructions per operation under valgrind's callgrind, beside CPU-time medians "
        "(only the instruction-count table; with --write, it heads the suite's section)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(suites))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; available: {', '.join(suites)}")
    if args.icount:
        try:
            _icount.valgrind()
        except _icount.ValgrindMissing as exc:
            print(f"python -m benchmarks: {exc}", file=sys.stderr)
            return 2
    status = 0
    for suite in args.suites or suites:
        module = importlib.import_module(f"benchmarks.suite_{suite}")
        if args.icount:
            if not hasattr(module, "icount"):
                print(f"{suite}: no instruction-count scenarios\n")
                continue
            tables: list[Table] = [
                _icount.table(suite, spec, args.quick) for spec in _icount.specs(module, args.quick)
            ]
            if args.write:
                write_section(f"{suite}-icount", tables, before=suite)
        else:
            try:
                tables = module.run(quick=args.quick)
            except MissingTool as exc:
                print(f"python -m benchmarks: {suite}: {exc}", file=sys.stderr)
                status = 2
                continue
            if args.write:
                write_section(suite, tables)
        for table in tables:
            print(table.text())
    return status


if __name__ == "__main__":
    sys.exit(main())
