"""The package's module-level imports flow one way: no module imports one that imports it back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xasr"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """xasr modules imported at module level (function bodies import lazily and are left out)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found


def test_no_import_cycles_between_xasr_modules():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: top_level_imports(path, set(paths)) - {name} for name, path in paths.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(other):] + [other]))
            if other not in state:
                visit(other, trail + [other])
        state[name] = "done"

    for name in sorted(paths):
        if name not in state:
            visit(name, [name])
    assert graph["xasr.model"] and not {"xasr.decode", "xasr.generation"} & graph["xasr.model"]
    assert "xasr.model" in graph["xasr.generation"]  # decoding policy sits above the model, in one module
    assert "xasr.model" not in graph["xasr.data.dataset"]


def test_the_model_does_not_reach_up_to_decoding_even_lazily():
    path = PACKAGE / "model.py"
    lazy = {node.module for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module}
    lazy |= {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
             for alias in node.names}
    assert not {"xasr.decode", "xasr.generation", "xasr.loading", "xasr.cli"} & lazy
