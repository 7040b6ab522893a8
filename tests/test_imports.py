"""No application module uses another project module's private (`_x`) names.

A leading underscore says "may change without notice"; a module reaching into another's is
coupled to exactly what its owner felt free to change. Only the application packages are
checked: tests may use the privates of the module they test.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("integrations", "console", "demo")
# Names of the top-level project packages and modules: what "a project module" means.
PROJECT = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | {
    p.stem for p in ROOT.glob("*.py")
}
ACCESSORS = ("getattr", "setattr", "hasattr", "delattr")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_project_module(dotted: str) -> bool:
    return dotted.split(".")[0] in PROJECT and is_module(dotted)


def absolute(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The module an ImportFrom imports from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    # `from . import x` in a package's __init__ is the package itself.
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def violations(path: Path, source: str | None = None) -> list[str]:
    """What the file at path (or source, as if it were that file) uses of others' privates."""
    current = module_name(path)
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    found = []
    # Local names bound to project modules anywhere in the file (imports inside functions
    # too): name -> module.
    modules: dict[str, str] = {}

    def where(node):
        return f"{path.relative_to(ROOT)}:{node.lineno}"

    def other_module(name: str) -> bool:
        return is_project_module(name) and name != current

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not is_project_module(alias.name):
                    continue
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:  # `import a.b` binds `a`; `a.b` is then resolved through it
                    top = alias.name.split(".")[0]
                    modules[top] = top
                if any(is_private(part) for part in alias.name.split(".")[1:]):
                    found.append(f"{where(node)} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node, current, path.name == "__init__.py")
            if source.split(".")[0] not in PROJECT:
                continue
            for alias in node.names:
                if is_private(alias.name) and source != current:
                    found.append(f"{where(node)} imports {alias.name} from {source}")
                elif is_project_module(f"{source}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"

    def resolve(node) -> str | None:
        """The project module an expression names, through the names imported above."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head not in modules:
            return None
        full = f"{modules[head]}.{rest}" if rest else modules[head]
        return full if is_project_module(full) else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            target = resolve(node.value)
            if target and other_module(target):
                found.append(f"{where(node)} uses {target}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ACCESSORS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
        ):
            target = resolve(node.args[0])
            if target and other_module(target):
                found.append(f"{where(node)} uses {target}.{node.args[1].value} via {node.func.id}")
    return found


def checked_files() -> list[Path]:
    return sorted(
        path
        for package in CHECKED
        if (ROOT / package).is_dir()
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_no_module_uses_another_modules_private_names():
    found = [v for path in checked_files() for v in violations(path)]
    assert not found, "Private names used across modules:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            "from integrations.outbound.http import _where\n",
            "imports _where from integrations.outbound.http",
        ),
        ("def f():\n    from integrations.outbound.http import _where\n", "imports _where"),
        ("from .http import _where\n", "imports _where from integrations.outbound.http"),
        ("from . import http\nhttp._where(1)\n", "uses integrations.outbound.http._where"),
        (
            "import integrations.outbound.http\nintegrations.outbound.http._where(1)\n",
            "uses integrations.outbound.http._where",
        ),
        (
            "from integrations.outbound import http as h\nh._where(1)\n",
            "uses integrations.outbound.http._where",
        ),
        (
            "def f():\n    import integrations.outbound.http as h\n    h._where(1)\n",
            "uses integrations.outbound.http._where",
        ),
        ("import integrations.outbound.http as h\ngetattr(h, '_where')\n", "via getattr"),
    ],
)
def test_the_check_finds_each_form(source, expected):
    found = violations(ROOT / "integrations" / "outbound" / "example.py", source)
    assert any(expected in v for v in found), found


def test_the_check_allows_public_names_own_privates_and_other_objects():
    source = (
        "from integrations.outbound import http\n"
        "from integrations.outbound.http import send, _where\n"
        "from django.db import _private_of_a_library\n"
        "http.send(1)\n"
        "http.__name__\n"
        "obj._attribute_of_an_object\n"
    )
    assert violations(ROOT / "integrations" / "outbound" / "http.py", source) == []
