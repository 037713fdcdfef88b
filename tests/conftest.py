"""Shared helpers: run the real CLI in-process or as a subprocess, write manifests."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/runner-test/wordfreq"


@dataclass
class Result:
    """What a user sees: exit code and both streams."""

    code: int
    out: str
    err: str


def cli(*args: str, cwd: Path | None = None) -> Result:
    """Run `runner ARGS` in this process (fast; for validation and planning)."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())


def run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Result:
    """Run `runner ARGS` as a real subprocess (for anything that starts processes)."""
    p = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Result(p.returncode, p.stdout, p.stderr)


def write(path: Path, text: str) -> Path:
    """Write dedented `text` to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh directory to hold manifests, state and outputs."""
    return tmp_path


@pytest.fixture(scope="session")
def images() -> str:
    """localhost/runner-test/wordfreq:1 and :2, built by the container example's build-image.sh
    (busybox-static, podman import; wordfreq 2 also prints each word's share)."""
    assert shutil.which("podman"), "scripts/test installs podman"
    build = ROOT / "manifests" / "examples" / "container" / "build-image.sh"
    subprocess.run([str(build), IMAGE], check=True, capture_output=True)
    return IMAGE
