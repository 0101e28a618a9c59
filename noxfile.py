"""Developer sessions: ``nox -s tests lint typing bench demo``.

``tests`` runs on every supported Python that is installed. Interpreters
installed with pyenv are found even when they are not pyenv's global version.
On CI (``CI`` set) a missing interpreter is an error, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
nox.options.reuse_venv = "yes"


def _expose_pyenv_interpreters() -> None:
    """Put each pyenv-installed CPython's bin/ on PATH so nox finds ``python3.12`` etc."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    bins = [str(p) for p in sorted(root.glob("3.*/bin")) if p.is_dir()]
    if bins:
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *bins])


_expose_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite against real services."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.install("-e", ".[redis,grpc,examples]", "mypy>=1.11")
    session.run("mypy", "--strict", "src")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The side-by-side benchmarks; pass ``-- --write`` to refresh docs/benchmarks.md."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """The quickstart of the reference master and workers."""
    session.install("-e", ".[examples]")
    session.run("python", "-m", "examples.quickstart", *session.posargs)
