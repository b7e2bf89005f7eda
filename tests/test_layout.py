"""The layout the README promises: imports flow one way, and streams/ is grouped by concern with no import circle."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "rules", "streams")
# each may import only what is below it: streams.generators -> streams.tools -> streams.runtime -> rules -> schemas
ORDER = ["schemas", "rules", "streams.runtime", "streams.tools", "streams.generators"]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each project module and the project modules it imports when it runs, at any depth of its code (imports
    for type checkers only are not imports)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name, targets = module_name(path), set()
            for node in run_time_nodes(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets.add(node.module)
                    targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            found[name] = {target for target in targets if target.split(".")[0] in PACKAGES}
    modules = set(found)
    return {name: {target for target in targets if target in modules and target != name}
            for name, targets in found.items()}


def run_time_nodes(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (child for branch in node.orelse for child in [branch, *run_time_nodes(branch)])
            continue
        yield node
        yield from run_time_nodes(node)


def layer(module: str) -> int:
    return max(n for n, prefix in enumerate(ORDER) if module == prefix or module.startswith(prefix + "."))


def test_streams_is_grouped_by_concern():
    loose = sorted(path.name for path in (REPO / "streams").glob("*.py") if path.name != "__init__.py")
    assert loose == [], f"modules outside streams/runtime, streams/tools, streams/generators: {loose}"


def test_imports_flow_one_way():
    upward = sorted(f"{source} imports {target}" for source, targets in imports().items() for target in targets
                    if layer(target) > layer(source))
    assert upward == []


def test_no_import_circles():
    graph = imports()
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []
