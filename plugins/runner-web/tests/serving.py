"""For tests that start `runner serve` as a real process: a free port, and waiting until the
server answers (imported by the tests beside this file)."""

from __future__ import annotations

import socket
import subprocess
import time

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
