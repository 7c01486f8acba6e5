"""The import graph points one way: core never imports adapters, pretraining never imports
benchmarks, and no module imports itself back through others (function-level imports count)."""

from __future__ import annotations

import ast

from conftest import REPO

# Import name -> folder, as pyproject's package-dir maps them.
FOLDERS = {"ct_plugins.adapters": "adapters", "ct_plugins.pretrain": "pretrain", "ct_plugins": "ct_plugins"}


def module_files() -> dict[str, object]:
    files = {}
    for package, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):  # subpackages too (ct_plugins.analysis)
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            files.setdefault(".".join((package, *parts)), path)
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        files[f"benchmarks.{path.stem}"] = path
    return files


def imports_of(path, known: set[str]) -> set[str]:
    """Modules ``path`` imports; ``from package import module`` counts as the module only."""
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found |= submodules or {node.module}
    return found & known


def runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
            continue
        yield child
        yield from runtime_nodes(child)


def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


def layer(name: str) -> str:
    for prefix in ("ct_plugins.adapters", "ct_plugins.pretrain", "benchmarks"):
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return "core"


def test_core_never_imports_adapters_and_pretrain_never_imports_benchmarks():
    arrows = {(name, target) for name, targets in graph().items() for target in targets}
    forbidden = {("core", "ct_plugins.adapters"), ("ct_plugins.pretrain", "benchmarks"),
                 ("core", "ct_plugins.pretrain"), ("core", "benchmarks"),
                 ("ct_plugins.adapters", "benchmarks")}
    bad = sorted((a, b) for a, b in arrows if (layer(a), layer(b)) in forbidden)
    assert not bad, bad


def test_subpackages_are_in_the_graph():
    assert "ct_plugins.analysis.similarity" in module_files()


def test_no_import_cycles():
    edges = graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return path + [node, target]
            if target not in state:
                cycle = visit(target, path + [node])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node, [])
            assert cycle is None, " -> ".join(cycle)
