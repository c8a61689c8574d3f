"""No module of wikitop imports (at module level, inside a function or for type checking)
a module that imports it back, directly or through others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wikitop

PACKAGE = Path(wikitop.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The wikitop modules a file names in its imports; ``from wikitop.x import y`` names
    wikitop.x.y when that is a module, else wikitop.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return trail[trail.index(name):] + [name]
        if name in done:
            return None
        for target in sorted(graph[name]):
            cycle = visit(target, [*trail, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None


def test_no_module_imports_one_that_imports_it_back():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_sees_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    source = PACKAGE / "runner.py"
    assert "wikitop.pipeline" in imported_modules(source, set(import_graph()))


def test_help_imports_no_arrow_nor_numpy():
    """Every command's help is read before any data is: it must not pay for Arrow or NumPy.
    The import system probes modules for names such as __path__ (model's __getattr__)."""
    script = (
        "import sys\n"
        "from wikitop import cli\n"
        "for command in [[], *([name] for name in cli.main.commands)]:\n"
        "    cli.main([*command, '--help'], standalone_mode=False)\n"
        "print(sorted(name for name in ('pyarrow', 'numpy', 'duckdb') if name in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_every_schema_name_is_made_and_no_other():
    import wikitop.model as model

    assert set(model._schemas()) == model._SCHEMA_NAMES
    assert all(getattr(model, name).names for name in model._SCHEMA_NAMES)
    assert not hasattr(model, "__path__")


def test_a_session_with_nothing_to_migrate_starts_without_arrow(tmp_path):
    """A range's first requests go out while Arrow is still to import: opening a session (which
    moves the cache's old totals into the lake, when there are any) must not import it."""
    script = (
        "import sys\n"
        "from wikitop.pipeline import Wikitop\n"
        "from wikitop.settings import Settings\n"
        f"Wikitop(Settings(cache_dir={str(tmp_path)!r}, out={str(tmp_path / 'out')!r})).close()\n"
        "print(sorted(name for name in ('pyarrow', 'numpy', 'duckdb') if name in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"
