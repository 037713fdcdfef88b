"""Cancelling a run from elsewhere (another terminal, the dashboard): its runner is asked
to stop; a run whose runner is already gone is closed here instead.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from runner.api.inspection import open_state
from runner.api.recovery import reclaim, runner_alive
from runner.api.results import Cancellation
from runner.errors import UserError

__all__ = ["cancel"]


def cancel(state_dir: Path, run_id: int) -> Cancellation:
    """Ask the runner of `run_id` to stop (SIGTERM); tidy up if that runner is gone."""
    state = open_state(state_dir)
    try:
        run = state.run(run_id)
        if run is None:
            raise UserError(f"no run {run_id} in {state_dir}; see `runner runs`")
        if run["state"] != "running":
            return Cancellation(run_id, "not-running", run["state"])
        state.request_cancel(run_id)
        pid = run["pid"]
        here = run["host"] == socket.gethostname()
        if here and runner_alive(state_dir, run["job"], pid):
            os.kill(pid, signal.SIGTERM)
            return Cancellation(run_id, "asked", run["state"], pid=pid)
        if not here:
            raise UserError(
                f"run {run_id} is run by a runner on host {run['host']!r}; cancel it there"
            )
        killed = reclaim(state, run_id, run["job"], "cancelled; its runner had already stopped")
        return Cancellation(run_id, "reclaimed", run["state"], killed=killed)
    finally:
        state.close()
