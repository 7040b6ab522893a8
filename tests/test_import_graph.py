"""No import circles in Kiln's own code, at any level.

Every `import` and `from … import` counts, including those inside functions: a circle hidden in
a function still means two modules cannot be understood (or moved) one without the other.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("console", "integrations", "demo")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The project modules `name` imports; the packages it lives in do not count."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from a import b`: the module a.b when there is one, else a name in a.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def circles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_kiln_has_no_import_circles():
    modules = project_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    found = circles(graph)
    assert found == [], "\n".join(
        " ⇄ ".join(c) + ": " + "; ".join(f"{m} → {sorted(set(c) & graph[m])}" for m in c)
        for c in found
    )


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    # The test above could pass by finding nothing; this one shows it would see a circle.
    (tmp_path / "a.py").write_text("from pkg import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from pkg import a\n")
    modules = {
        "pkg": tmp_path / "__init__.py",
        "pkg.a": tmp_path / "a.py",
        "pkg.b": tmp_path / "b.py",
    }
    (tmp_path / "__init__.py").write_text("")
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert circles(graph) == [["pkg.a", "pkg.b"]]


def test_outbound_imports_nothing_else_of_kiln():
    modules = project_modules()
    for name, path in modules.items():
        if name.startswith("integrations.outbound"):
            others = {
                m
                for m in imports_of(name, path, modules)
                if not m.startswith("integrations.outbound")
            }
            assert others == set(), name
