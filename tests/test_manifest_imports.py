"""The manifest package has no import cycle (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import mobile_pipeline.manifest as package


def _imports(path: Path) -> set[str]:
    """Modules of the manifest package that ``path`` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mobile_pipeline.manifest."):
            found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("mobile_pipeline.manifest."))
    return found


def test_manifest_modules_import_without_cycles() -> None:
    folder = Path(package.__file__).parent
    graph = {p.stem: _imports(p) for p in folder.glob("*.py")}
    assert "tier_source" in graph["builder"] and "errors" in graph["tier_source"]

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join(stack + (node,))}"
        for nxt in graph.get(node, ()):
            visit(nxt, stack + (node,))

    for module in graph:
        visit(module, ())


def test_build_error_is_one_class_everywhere() -> None:
    from mobile_pipeline.manifest import builder, errors, tier_source

    assert builder.ManifestBuildError is errors.ManifestBuildError is tier_source.ManifestBuildError
