"""``python -m benchmarks [suite ...] [--quick] [--write]``."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import platform
import re
import sys
from pathlib import Path

from benchmarks._harness import Table

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def available_suites() -> list[str]:
    return sorted(p.stem.removeprefix("suite_") for p in Path(__file__).parent.glob("suite_*.py"))


def write_section(suite: str, tables: list[Table]) -> None:
    """Replace the suite's marked section of docs/benchmarks.md (appending it if new)."""
    start, end = f"<!-- bench:{suite}:start -->", f"<!-- bench:{suite}:end -->"
    stamp = (
        f"_Measured {dt.date.today().isoformat()} with `python -m benchmarks {suite} --write` "
        f"on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}._\n"
    )
    body = "\n".join([start, stamp, *(t.markdown() for t in tables), end])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text)
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    suites = available_suites()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(suites)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(suites))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; available: {', '.join(suites)}")
    for suite in args.suites or suites:
        module = importlib.import_module(f"benchmarks.suite_{suite}")
        tables: list[Table] = module.run(quick=args.quick)
        for table in tables:
            print(table.text())
        if args.write:
            write_section(suite, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
