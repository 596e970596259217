"""The packages' import arrows point one way (DESIGN.md): api -> evolver -> workers / deploy -> yolo.
Nothing imports api; yolo imports none of the others; workers and deploy only yolo (and each other
never). Checked on the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast

import pytest

from tests.paths import REPO

FORBIDDEN = {
    "yolo": {"evolver", "workers", "deploy", "api"},
    "workers": {"evolver", "deploy", "api"},
    "deploy": {"evolver", "workers", "api"},
    "evolver": {"api"},
}


def imported_packages(path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_nothing_imports_a_package_above_it(package):
    wrong = [f"{path.relative_to(REPO)}:{line} imports {module}"
             for path in sorted((REPO / package).rglob("*.py"))
             for line, module in imported_packages(path)
             if module.split(".")[0] in FORBIDDEN[package]]
    assert wrong == []


def test_the_dispatcher_finds_every_packages_commands():
    from evolver.cli import build_parser

    _, handlers = build_parser()
    assert {"run", "resume", "train", "val", "convert", "export", "serve"} <= set(handlers)
