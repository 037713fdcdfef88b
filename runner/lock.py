"""One runner per job at a time: an flock that the kernel releases when its holder dies.

The lock file holds the holder's pid, host and start time so the refusal can say who holds it.
Children never inherit it (subprocesses are started with close_fds).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from runner.errors import UserError

__all__ = ["JobLock"]


class JobLock:
    """An exclusive, non-blocking lock on one job's state."""

    def __init__(self, state_dir: Path, job: str) -> None:
        self.path = state_dir / "locks" / f"{job}.lock"
        self.job = job
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise UserError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
            except ValueError:
                holder = {}
            f.close()
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
            since = holder.get("since")
            if since:
                who += f", since {time.strftime('%H:%M:%S', time.localtime(since))}"
            raise UserError(
                f"job {self.job!r} is already being applied by another runner ({who}); "
                "wait for it to finish, or stop it with `runner cancel RUN`"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        )
        f.flush()
        self._file = f

    def release(self) -> None:
        """Give the lock up."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
