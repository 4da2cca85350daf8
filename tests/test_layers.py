"""The layers of `app/`: no module imports from a layer above its own, and the views reach the
logic only through `accounts` (docs/architecture.md draws the same layers).

Every import is read with `ast`, those inside functions included, so a lazy import cannot hide
a dependency. A new module must be given a layer here: the test names it until it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

# Top to bottom. A module may import from its own layer and the layers below it. An entry names
# a module or a package (a package's entry covers every module in it).
LAYERS = [
    ("factory", ["app", "app.cli"]),
    ("views", ["app.views"]),
    ("web", ["app.errors", "app.limits", "app.endpoints", "app.forms"]),
    ("services", ["app.accounts", "app.health_report", "app.signup_state"]),
    ("stores", ["app.pending", "app.models", "app.mail", "app.backup"]),
    ("base", ["app.security", "app.config", "app.extensions", "app.metrics", "app.files",
              "app.redaction", "app.headers", "app.i18n",
              "app.fastpaths", "app.typos", "app.version"]),
]
# What the views may not import at all, whatever its layer: the logic's own parts.
NOT_FROM_VIEWS = ["app.pending", "app.models", "app.extensions"]


def module_name(path: Path) -> str:
    """`app/views/verify.py` -> `app.views.verify`; `app/pending/__init__.py` -> `app.pending`."""
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def shown(path: Path) -> str:
    """The path to show in a failure: relative to the project when it is in it."""
    return str(path.relative_to(APP.parent)) if path.is_relative_to(APP.parent) else path.name


def app_modules() -> dict[str, Path]:
    """Every module of the app package, by dotted name."""
    return {module_name(path): path for path in sorted(APP.rglob("*.py"))}


def covers(entry: str, name: str) -> bool:
    """True when a LAYERS entry is `name` or a package holding it (`app` only itself)."""
    return name == entry or (entry != "app" and name.startswith(entry + "."))


def layer_of(name: str) -> int | None:
    """The index of the layer `name` is in (0 at the top), or None for an unplaced module."""
    best = None
    for index, (_label, entries) in enumerate(LAYERS):
        for entry in entries:
            # The longest entry wins, so `app.cli` is not read as the `app` package.
            if covers(entry, name) and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    return best[0] if best else None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, dotted name) of each module of the app that `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # `from . import accounts` imports the module app.accounts; `from .pending
                # import get_manager` imports from the module app.pending.
                target = f"{source}.{alias.name}"
                found.append((node.lineno, target if target in modules else source))
    return [(line, target) for line, target in found
            if target == "app" or target.startswith("app.")]


def test_every_module_has_a_layer():
    """A new module is placed in a layer (add it to LAYERS) before it can be checked."""
    unplaced = [name for name in app_modules() if layer_of(name) is None]
    assert not unplaced, f"give these modules a layer in tests/test_layers.py: {unplaced}"


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """Every import from a layer above the importing module's."""
    found = []
    for name, path in modules.items():
        own = layer_of(name)
        for line, target in imports_of(name, path, modules):
            other = layer_of(target)
            if own is not None and other is not None and other < own:
                found.append(f"{shown(path)}:{line} ({LAYERS[own][0]}) imports "
                             f"{target} ({LAYERS[other][0]})")
    return found


def view_imports_of_logic(modules: dict[str, Path]) -> list[str]:
    """Every import by a view of the pending store, the models or the database."""
    found = []
    for name, path in modules.items():
        if not covers("app.views", name):
            continue
        for line, target in imports_of(name, path, modules):
            if any(covers(banned, target) for banned in NOT_FROM_VIEWS):
                found.append(f"{shown(path)}:{line} imports {target}")
    return found


def test_no_module_imports_from_a_layer_above():
    """Each module depends only on its own layer and those below it."""
    assert upward_imports(app_modules()) == []


def test_views_go_through_accounts():
    """The views import nothing from the pending store, the models or `db`."""
    assert view_imports_of_logic(app_modules()) == []


@pytest.mark.parametrize("source, problem", [
    ("from ..pending import get_manager\n", "view"),
    ("from ..extensions import db\n", "view"),
    ("from app.models import User\n", "view"),
    ("from .. import __version__\n", "upward"),
])
def test_the_checks_catch_a_view_reaching_past_accounts(tmp_path, source, problem):
    """What the checks above look for, shown on a view written the old way."""
    path = tmp_path / "verify.py"
    path.write_text(source)
    modules = {**app_modules(), "app.views.verify": path}
    found = (view_imports_of_logic if problem == "view" else upward_imports)(modules)
    assert len(found) == 1 and "verify.py:1" in found[0]
