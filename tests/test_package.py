"""The distribution is importable as documented and ships its type information."""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path

import pytest

import ffrtmp_infra


@pytest.mark.parametrize("name", ["ratelimit", "tracing", "resources"])
def test_subpackages_import_and_list_their_public_names(name: str) -> None:
    module = importlib.import_module(f"ffrtmp_infra.{name}")
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.__all__ names missing {public}"


def test_version_is_single_sourced_from_the_package() -> None:
    assert metadata.version("ffrtmp-infra") == ffrtmp_infra.__version__


def test_package_is_marked_typed() -> None:
    assert (Path(ffrtmp_infra.__file__).parent / "py.typed").is_file()
