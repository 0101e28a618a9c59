"""Our attribute-name strings against the installed semantic-conventions package."""

from __future__ import annotations

import importlib

from ffrtmp_infra.tracing import _attributes

OURS = {name: value for name, value in vars(_attributes).items() if name.isupper()}


def semconv_value(name: str, value: str) -> str | None:
    """The installed package's constant ``name``, stable or incubating, if it has one."""
    namespace = value.split(".")[0]
    for package in ("attributes", "_incubating.attributes"):
        try:
            module = importlib.import_module(
                f"opentelemetry.semconv.{package}.{namespace}_attributes"
            )
        except ImportError:  # older releases lack some modules: that is why we own the names
            continue
        found = getattr(module, name, None)
        if isinstance(found, str):
            return found
    return None


def test_every_name_we_own_matches_the_installed_semconv() -> None:
    compared = {name: semconv_value(name, value) for name, value in OURS.items()}
    mismatched = {
        name: (OURS[name], theirs)
        for name, theirs in compared.items()
        if theirs is not None and theirs != OURS[name]
    }
    assert mismatched == {}
    # Even the oldest supported release knows the HTTP, error and process names.
    assert sum(theirs is not None for theirs in compared.values()) >= 20
