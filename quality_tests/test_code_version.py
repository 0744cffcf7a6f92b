"""Code versions: the package modules a source file imports, found wherever the import sits."""

import ast
import textwrap

from quality_assets.code_version import _imported_modules, code_version

NESTED = textwrap.dedent('''
    import os
    from quality_assets.knn import KnnGraph

    def load():
        try:
            import quality_assets.splits
        except ImportError:
            from quality_assets.scores import leakage
        finally:
            from quality_assets import store

    class Holder:
        def method(self, kind):
            with open(kind):
                if kind:
                    pass
                else:
                    from quality_assets.imaging import hue_matrix
            match kind:
                case "a":
                    import quality_assets.pixel_view
                case _:
                    pass
            for _ in kind:
                pass
            else:
                import quality_assets.data_roots
            while kind:
                from quality_assets.scores.cutoff import fraction_cut
            async def later():
                async with kind:
                    import quality_assets.side_by_side
            return lambda: __import__("quality_assets.runner")   # not an import statement
''')


def _every_node(path) -> set[str]:
    """The plain definition: every import node anywhere in the tree."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_imports_nested_in_any_statement_are_found(tmp_path):
    path = tmp_path / "nested.py"
    path.write_text(NESTED)
    found = _imported_modules(path)
    assert found == {
        "quality_assets.knn", "quality_assets.splits", "quality_assets.scores", "quality_assets.scores.leakage",
        "quality_assets", "quality_assets.store", "quality_assets.imaging", "quality_assets.pixel_view",
        "quality_assets.data_roots", "quality_assets.scores.cutoff", "quality_assets.side_by_side"}
    # The same as visiting every node, less the names that are not package modules.
    assert found == {name for name in _every_node(path) if name.startswith("quality_assets")
                     and name not in ("quality_assets.knn.KnnGraph", "quality_assets.imaging.hue_matrix",
                                      "quality_assets.scores.cutoff.fraction_cut")}


def test_a_stage_s_version_follows_the_modules_it_reaches():
    assert code_version("quality_assets.knn") != code_version("quality_assets.splits")
    assert code_version("quality_assets.knn") == code_version("quality_assets.knn")
    assert len(code_version("quality_assets.scores.near_duplicate")) == 16
