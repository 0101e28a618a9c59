"""The README and docs/ stay truthful: links resolve and the README's code imports real names."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(doc: Path) -> None:
    missing = [
        target
        for target in LINK.findall(doc.read_text())
        if "://" not in target
        and not target.startswith("mailto:")
        and not (doc.parent / target).exists()
    ]
    assert not missing, f"{doc.name} links to missing files: {missing}"


REPOSITORY = "https://github.com/ffrtmp/ffrtmp-infra/"


def test_readme_links_are_absolute_and_point_at_files_of_this_repository() -> None:
    """The README is the package index's long description, where relative links break."""
    targets = LINK.findall((ROOT / "README.md").read_text())
    relative = [t for t in targets if "://" not in t]
    assert not relative, f"the README has relative links: {relative}"
    ours = [t.removeprefix(REPOSITORY) for t in targets if t.startswith(REPOSITORY)]
    assert ours, "the README links to none of the guides"
    missing = [
        path
        for path in (t.split("/", 2)[2] for t in ours if t.startswith(("blob/", "tree/")))
        if not (ROOT / path).exists()
    ]
    assert not missing, f"the README links to missing files: {missing}"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_python_blocks_parse_and_import_existing_names() -> None:
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "the README has no usage examples"
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
