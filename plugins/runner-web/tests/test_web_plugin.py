"""`runner serve` finds the dashboard through an entry point, like any plugin, and says how to
install it when it is not there."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from runner_web.server import serve


def test_the_dashboard_is_the_serve_entry_point_of_runner_commands() -> None:
    found = list(entry_points(group="runner.commands", name="serve"))
    assert [ep.value for ep in found] == ["runner_web.server:serve"]
    assert found[0].load() is serve
    assert found[0].dist is not None and found[0].dist.name == "runner-web"


def test_runner_serve_without_the_dashboard_says_how_to_install_it(tmp_path: Path) -> None:
    # the group's entry points hidden, as on an installation without runner-web
    code = (
        "import importlib.metadata as m; real = m.entry_points; "
        "m.entry_points = lambda **kw: [] if kw.get('group') == 'runner.commands' else real(**kw); "
        "from runner.cli import main; main(['serve', '.'])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pip install -e plugins/runner-web" in r.stderr and "Traceback" not in r.stderr
