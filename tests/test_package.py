"""The package as a whole: its modules import one another in one direction only."""

import ast
from pathlib import Path

import albert_zh

PACKAGE = Path(albert_zh.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The albert_zh modules a source file imports, at the top or inside functions."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from albert_zh import checkpoint` imports the module checkpoint
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names
                  if name.startswith("albert_zh.") and name.split(".")[1] in modules}
    return found - {path.stem}


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state = {}  # module -> "open" while on the current path, "done" after

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state and (cycle := visit(other, path + [other])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_layers():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"serve": {"inference"}, "inference": {"export", "backends"}, "export": {"backends"}}) is None


def test_no_modules_import_each_other():
    graph = {path.stem: imported_modules(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    # the parser sees each form: `from albert_zh import m`, `from albert_zh.m import x`, inside a function
    assert "checkpoint" in graph["model"] and "checkpoint" in graph["export"] and "serve" in graph["cli"]
    assert import_cycle(graph) is None, f"import cycle: {' -> '.join(import_cycle(graph))}"
