"""Developer sessions: ``nox -s tests lint typing lowest latest coexist bench demo``.

``tests`` runs on every supported Python that is installed. Interpreters
installed with pyenv are found even when they are not pyenv's global version.
On CI (``CI`` set) a missing interpreter is an error, never a silent skip.

``lowest`` and ``latest`` run the whole suite against the lowest and the newest
versions of every declared runtime dependency; ``coexist`` installs the built
wheel beside other people's stacks (contrib instrumentations, an old FastAPI,
redis-py 8) and checks that pip finds nothing broken and the library works there.
Sessions use uv to create environments and install when it is available.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from itertools import chain
from pathlib import Path

import nox
from packaging.requirements import Requirement

PYTHONS = ["3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "uv|virtualenv"


def _expose_pyenv_interpreters() -> None:
    """Put each pyenv-installed CPython's bin/ on PATH so nox finds ``python3.12`` etc."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    bins = [str(p) for p in sorted(root.glob("3.*/bin")) if p.is_dir()]
    if bins:
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *bins])


_expose_pyenv_interpreters()


def _install_group(session: nox.Session, group: str, *args: str) -> None:
    """Install the project (editable) and one PEP 735 dependency group."""
    if session.venv_backend != "uv":
        session.install("pip>=25.1")
    session.install(*args, "-e", ".", "--group", group)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite against real services."""
    _install_group(session, "test")
    session.run("python", "-m", "pytest", *session.posargs)


def _lowest_direct_pins() -> list[str]:
    """``name==floor`` for every runtime dependency (base and user-facing extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *chain(*project["optional-dependencies"].values())]
    pins = []
    for line in declared:
        requirement = Requirement(line)
        (floor,) = (spec.version for spec in requirement.specifier if spec.operator == ">=")
        pins.append(f"{requirement.name}=={floor}")
    return pins


@nox.session(python="3.11", venv_backend="uv", reuse_venv=False)
def lowest(session: nox.Session) -> None:
    """The whole suite with every declared runtime dependency at its lowest version.

    The extras count as declared dependencies: FastAPI, Flask and Django run at their
    floors here (tests/ratelimit/test_fastapi.py, test_flask.py, test_django.py and the
    real-server suite test_servers.py), at their newest in ``latest``.

    Only the direct runtime dependencies are held at their floors (uv's
    lowest-direct resolution); test tools and transitive packages resolve freely.
    """
    constraints = Path(session.create_tmp()) / "lowest.txt"
    constraints.write_text("\n".join(_lowest_direct_pins()) + "\n")
    session.install("-c", str(constraints), "-e", ".", "--group", "test")
    session.run("uv", "pip", "list", silent=False)
    # The benchmark runner's tests are left to the default and ``latest`` runs: its peers
    # (contrib's middleware with exclude_spans, Starlette's own OpenTelemetry middleware)
    # are measured at current releases, not at this session's floors.
    session.run("python", "-m", "pytest", "--ignore=tests/test_benchmarks.py", *session.posargs)


@nox.session(python="3.11", venv_backend="uv", reuse_venv=False)
def latest(session: nox.Session) -> None:
    """The whole suite with the newest release of everything."""
    session.install("--upgrade", "--resolution", "highest", "-e", ".", "--group", "test")
    session.run("uv", "pip", "list", silent=False)
    session.run("python", "-m", "pytest", *session.posargs)


# Other people's stacks the wheel must install beside, with `pip check` clean.
# Each entry: (name, requirements besides the wheel, smoke scenario to run there).
COEXISTENCE = [
    (
        "contrib-instrumentations",
        [
            "opentelemetry-instrumentation-flask",
            "opentelemetry-instrumentation-django",
            "opentelemetry-instrumentation-fastapi",
            "opentelemetry-instrumentation-requests",
            "opentelemetry-instrumentation-httpx",
            "opentelemetry-instrumentation-sqlalchemy",
            "opentelemetry-instrumentation-redis",
            "fastapi==0.115.*",
            "httpx",
        ],
        "fastapi",
    ),
    (
        "flask-django-instrumentations",
        ["opentelemetry-instrumentation-flask", "opentelemetry-instrumentation-django"],
        "wsgi",
    ),
    ("fastapi-0.115", ["fastapi==0.115.*", "httpx"], "fastapi"),
    ("redis-8", ["redis==8.*"], "redis"),
]


@nox.session(python="3.11", venv_backend="uv")
def coexist(session: nox.Session) -> None:
    """The built wheel beside other stacks: installs, ``pip check`` clean, and works there."""
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("uv", "build", "--out-dir", str(dist), str(ROOT))
    (wheel,) = dist.glob("ffrtmp_infra-*.whl")
    (sdist,) = dist.glob("ffrtmp_infra-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        assert any(n.endswith("licenses/LICENSE") for n in archive.namelist()), "no LICENSE"
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    for needed in ("LICENSE", "examples/master/__main__.py", "tests/conftest.py"):
        assert any(n.endswith("/" + needed) for n in names), f"the sdist lacks {needed}"
    smoke = ROOT / "tests" / "coexistence" / "smoke.py"
    for name, requirements, scenario in COEXISTENCE:
        with tempfile.TemporaryDirectory(prefix=f"coexist-{name}-") as tmp:
            python = Path(tmp) / "bin" / "python"
            session.log(f"--- {name}: {' '.join(requirements)}")
            session.run("uv", "venv", "--seed", "--quiet", "--python", "3.11", tmp)
            target = f"{wheel}[redis]" if scenario == "redis" else str(wheel)
            session.run(
                "uv", "pip", "install", "--quiet", "--python", str(python), target, *requirements
            )
            session.run(str(python), "-m", "pip", "check", external=True)
            session.run(str(python), str(smoke), scenario, external=True)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    """mypy --strict on src/."""
    _install_group(session, "typing")
    session.run("mypy", "--strict", "src")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The side-by-side benchmarks; pass ``-- --write`` to refresh docs/benchmarks.md."""
    _install_group(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """The quickstart of the reference master and workers."""
    _install_group(session, "examples")
    session.run("python", "-m", "examples.quickstart", *session.posargs)
