"""The service never imports the lab: only `qaudit demo` / `qaudit bench` reach it, lazily."""

from __future__ import annotations

import ast
from pathlib import Path

import quality_assets

PACKAGE = Path(quality_assets.__file__).resolve().parent
# Command-line entry points may import the lab inside the functions that run the demo or the bench.
LAZY_ALLOWED = {"cli.py", "runner.py"}


def _lab_imports(tree: ast.AST) -> list[ast.stmt]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "quality_lab" for a in node.names):
            found.append(node)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "quality_lab":
            found.append(node)
    return found


def _inside_function(tree: ast.AST, target: ast.stmt) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(child is target for child in ast.walk(node)):
                return True
    return False


def test_no_service_module_imports_the_lab():
    offenders = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the walk really sees the package
    for path in modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _lab_imports(tree):
            rel = path.relative_to(PACKAGE).as_posix()
            if rel in LAZY_ALLOWED and _inside_function(tree, node):
                continue
            offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"quality_assets imports quality_lab outside cli/runner function bodies: {offenders}"


def test_the_checker_catches_a_module_level_import():
    tree = ast.parse("import os\nfrom quality_lab.protocol import inject\n\ndef f():\n    import quality_lab.matrix\n")
    nodes = _lab_imports(tree)
    assert [n.lineno for n in nodes] == [2, 5]
    assert [_inside_function(tree, n) for n in nodes] == [False, True]


def test_benchmark_scripts_never_import_the_tests():
    scripts = sorted((PACKAGE.parent / "benchmarks").glob("*.py"))
    assert scripts
    for path in scripts:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "quality_tests", f"{path.name}:{node.lineno}"
            elif isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "quality_tests" for a in node.names), f"{path.name}:{node.lineno}"
