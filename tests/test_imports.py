"""The package's import graph: every module imports on its own, and no two modules import each other, directly or
through others, at module level or inside a function (a lazy import is still a cycle: it only moves the failure)."""
import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "htnet_lib"


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules `module` imports anywhere in its source (absolute or relative), with the packages whose
    `__init__` such an import runs first (other than `module`'s own)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets += [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
    out = set()
    for t in targets:
        if not t.startswith("htnet_lib"):
            continue
        while t not in known and "." in t:
            t = t.rsplit(".", 1)[0]
        parts = t.split(".")
        for k in range(2, len(parts) + 1):
            dep = ".".join(parts[:k])
            if dep in known and dep != module and not module.startswith(dep + "."):
                out.add(dep)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    known = modules()
    graph = {m: imported(m, p, known) for m, p in known.items()}
    assert cycles(graph) == [], "modules that import each other"
    assert "htnet_lib.models.htnet" in graph["htnet_lib.config"] or "htnet_lib.models" in graph["htnet_lib.config"]
    assert not any(d.startswith("htnet_lib.config") for d in graph["htnet_lib.models.registry"])  # networks below config


def test_the_checker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_imports(module):
    importlib.import_module(module)
