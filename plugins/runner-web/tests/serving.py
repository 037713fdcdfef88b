"""For tests that start `runner serve` as a real process: a free port, waiting until the
server answers, and a server that is stopped however the test ends (imported by the tests
beside this file)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(base: str, p: subprocess.Popen[str] | subprocess.Popen[bytes],
                       limit: float) -> None:  # fmt: skip
    """Until the server at `base` answers, while its process `p` runs, at most `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        try:
            httpx.get(base + "/login", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline and p.poll() is None, "runner serve did not answer"
            time.sleep(0.2)


@contextmanager
def serving(folder: str, *, cwd: Path, password: str) -> Iterator[str]:
    """`runner serve FOLDER` started in `cwd` with the first password `password`; its base
    URL once it answers. Stopped (Ctrl-C, then killed) when the block ends, failed or not."""
    port = free_port()
    env = {**os.environ, "RUNNER_WEB_PASSWORD": password}
    p = subprocess.Popen([sys.executable, "-m", "runner", "serve", folder, "--port", str(port)],
                         cwd=cwd, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base, p, 30)
        yield base
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
