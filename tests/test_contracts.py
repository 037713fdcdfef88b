"""The plugin contracts: executor, kind and store plugins import `runner.contracts` and nothing
else of the core; a plugin is checked against its contract when it is loaded (a missing member
is an error naming its package; a missing optional member gets the contract's default)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner import contracts, plugins
from runner.errors import UserError
from tests.conftest import ROOT

# the dashboard is an application on top of the API, not an executor, kind or store
PLUGIN_SOURCES = sorted(
    p for p in (ROOT / "plugins").glob("runner-*/runner_*/**/*.py")
    if not p.is_relative_to(ROOT / "plugins" / "runner-web")
)


def _core_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import of the `runner` package in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (
            node.module == "runner" or node.module.startswith("runner.")
        ):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "runner"]
    return found


def test_plugins_import_the_contracts_and_nothing_else_of_the_core() -> None:
    assert len(PLUGIN_SOURCES) >= 10
    strays = [
        f"{p.relative_to(ROOT)}: {module} {names}"
        for p in PLUGIN_SOURCES
        for module, names in _core_imports(p)
        if module != "runner.contracts" or any(n.startswith("_") for n in names)
    ]
    assert strays == []


def test_everything_the_contracts_export_is_there() -> None:
    for name in contracts.__all__:
        assert getattr(contracts, name) is not None, name


class OldKind:
    """A kind written before the optional members existed: only the required ones."""

    def expand(self, *, task: object) -> list[object]:
        return []

    def verify(self, **_: object) -> None:
        return None


def test_a_plugin_without_optional_members_gets_the_contracts_defaults() -> None:
    cls = plugins.conform("kind", "old", OldKind, "old-kind")
    kind = cls()
    assert kind.default_command is None and kind.runs_in_image is True
    assert kind.placeholders == frozenset()
    assert kind.explain(task=None, exit_code=1, stdout=Path("x"), stderr=Path("y")) is None
    assert isinstance(kind, contracts.Kind)


def test_a_plugin_missing_a_required_member_is_refused_naming_its_package() -> None:
    class Half:
        def expand(self, *, task: object) -> list[object]:
            return []

    with pytest.raises(UserError) as e:
        plugins.conform("kind", "half", Half, "half-kind")
    said = str(e.value)
    assert "kind plugin 'half' (package 'half-kind')" in said
    assert "does not implement runner.contracts.Kind: Half has no verify" in said
    with pytest.raises(UserError, match=r"settings_model is .* not a subclass"):
        plugins.conform("executor", "x", type("X", (contracts.ExecutorBase,), {
            "submit": 1, "settings_model": dict,
            **{m: lambda self: None for m in plugins.REQUIRED["executor"]},
        }), "x-exec")  # fmt: skip


def test_an_installed_plugin_that_breaks_its_contract_is_a_clear_error(tmp_path: Path) -> None:
    """A real distribution (a dist-info on the path) whose kind lacks `verify`: `runner
    validate` of a task of that kind exits 2 and says which package and what is missing."""
    site = tmp_path / "site"
    (site / "broken_kind-0.3.dist-info").mkdir(parents=True)
    (site / "broken_kind-0.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-kind\nVersion: 0.3\n"
    )
    (site / "broken_kind-0.3.dist-info" / "entry_points.txt").write_text(
        "[runner.kinds]\nbroken = broken_kind:BrokenKind\n"
    )
    (site / "broken_kind.py").write_text(textwrap.dedent("""
        class BrokenKind:
            def expand(self, *, task):
                return []
        """))
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  tasks:\n"
        "    t: {kind: broken, command: 'true'}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-m", "runner", "validate", "m.yaml"], cwd=tmp_path,
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "kind plugin 'broken' (package 'broken-kind')" in r.stderr
    assert "BrokenKind has no verify" in r.stderr and "Traceback" not in r.stderr
