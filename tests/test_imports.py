"""No import circles between artstyle's modules, counting the imports made inside
functions (they run too, just later) and the family modules the registry imports by
name; only `if TYPE_CHECKING:` blocks are left out. A circle is a module that cannot be
read without the one it is read from: the stages stop being stages."""

from __future__ import annotations

import ast
from pathlib import Path

import artstyle

ROOT = Path(artstyle.__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "artstyle").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The artstyle modules `name` imports, anywhere but under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            prefix = "".join(p.value for p in getattr(node.args[0], "values", []) if isinstance(p, ast.Constant))
            stem = prefix.rpartition(".")[2]
            if stem:  # f"{__package__}.family_{family}": every module it may name
                found.update(m for m in modules if m.startswith(f"{package}.{stem}"))
    return {m for m in found if m in modules and m != name}


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                groups.append(sorted([v, *group]))

    for v in edges:
        if v not in index:
            visit(v)
    return groups


def test_no_module_imports_itself_through_others():
    modules = _modules()
    edges = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "artstyle.features.family_open_clip" in edges["artstyle.features.backbones"]  # the registry's by-name imports
    assert _circles(edges) == []


def test_a_stage_imports_only_the_stages_before_it():
    """data -> features -> model -> apps: the layout is the pipeline."""
    order = {"data": 0, "features": 1, "model": 2, "apps": 3}
    modules = _modules()

    def stage(name: str) -> int | None:
        parts = name.split(".")
        return order.get(parts[1]) if len(parts) > 1 else None

    backwards = [(name, target) for name, path in modules.items() for target in _imports(name, path, modules)
                 if stage(name) is not None and stage(target) is not None and stage(target) > stage(name)]
    assert backwards == []


def test_the_checker_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
