"""What a newcomer meets first: the examples under manifests/ load together, what they write is
ignored by git, and on a fresh copy of the repository `scripts/demo` says nothing of its
installers' and the README's first command works as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runner import api
from tests.conftest import ROOT, cli


def test_every_example_loads_together() -> None:
    """`runner validate manifests/`: no two examples define the same name, and no input is
    missing on a fresh clone (what a task needs that an upstream task makes is pending)."""
    r = cli("validate", str(ROOT / "manifests"))
    assert r.code == 0, r.err
    assert "defined twice" not in r.err


def test_what_the_examples_write_is_ignored_by_git() -> None:
    bundle = api.validate([str(ROOT / "manifests")])
    written = {
        Path(folder)
        for job in bundle.jobs.values()
        for task in job.tasks.values()
        for name, folder in task.outputs.items()
        if name not in task.sinks
    }
    assert len(written) >= 8
    for folder in sorted(written):
        inside = folder.relative_to(ROOT) / "a-file"
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(inside)],
                                 cwd=ROOT)  # fmt: skip
        assert ignored.returncode == 0, f"{folder} is not ignored by .gitignore"
    # nothing a command wrote is kept in the repository either
    kept = subprocess.run(["git", "ls-files", "*.out", "*.err", "*.log", ".runner"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert kept == ""


def _fresh_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (those of this working tree)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.mark.slow
def test_on_a_fresh_copy_the_demo_is_quiet_and_the_readmes_first_command_works(
    tmp_path: Path,
) -> None:
    repo = _fresh_copy(tmp_path / "runner")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
    demo = subprocess.run(["scripts/demo"], cwd=repo, capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    # the demo's own output from its first line on: nothing of pip's or setuptools'
    assert demo.stdout.startswith("== runner validate manifests/demo\n"), demo.stdout[:2000]
    assert demo.stderr == "", demo.stderr[:2000]
    assert "result: 4800 words" in demo.stdout
    # the README's first command, as written, with runner on PATH as the README says
    readme = (repo / "README.md").read_text()
    first = re.search(r"```sh\n(.*?)\n", readme)
    assert first, "the README has no command"
    command = first.group(1).split("#")[0].strip()
    assert command.startswith("runner apply")
    shutil.rmtree(repo / "manifests" / "demo" / ".runner")
    env["PATH"] = f"{repo / '.venv' / 'bin'}:{env['PATH']}"
    r = subprocess.run(command, shell=True, cwd=repo, capture_output=True, text=True, env=env,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout
