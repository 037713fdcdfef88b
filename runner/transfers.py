"""Transfers: what an attempt reads or writes in a store, moved for the engine.

Remote inputs are staged into their local copies before a task starts; an instance's remote
outputs are uploaded from its own folder once it succeeded; an ended attempt's stdout and
stderr are shipped to its task's `logs` location. Each runs in a thread, so the engine's loop
goes on meanwhile. A transfer says what it moved and raises `TransferError` when it could not;
what that means for the instance (fail it, record it, go on) is the engine's to decide.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from runner.errors import UserError
from runner.model import Task
from runner.stores import StoreError, stage_input, store_for, upload_dir

__all__ = [
    "TransferError",
    "empty_output_folders",
    "log_location",
    "ship_logs",
    "stage_inputs",
    "upload_outputs",
]


class TransferError(Exception):
    """A transfer failed: the message names what, where and why, as an instance's reason."""


def _said(e: Exception) -> str:
    # the stores' own errors are for people; anything else is a bug, shown as such
    return str(e) if isinstance(e, (StoreError, OSError, UserError)) else repr(e)


async def stage_inputs(task: Task, progress: Callable[[str], None]) -> dict[str, str]:
    """Fetch each remote input of the plan's `task` (`sources`) to its local path, telling
    `progress` as each starts and ends. Returns the signature of what was fetched, by input
    name (what the fingerprint records)."""
    seen: dict[str, str] = {}
    name = uri = ""
    try:
        for name, uri in task.sources.items():
            progress(f"input {name}: {uri}")
            staged = await asyncio.to_thread(stage_input, uri, Path(task.inputs[name]))
            seen[name] = staged.signature
            progress(f"input {name}: {staged.fetched} fetched, {staged.cached} unchanged")
    except Exception as e:  # not only the store's own errors: a bug must fail the task
        raise TransferError(f"input {name} ({uri}): {_said(e)}") from e
    return seen


def empty_output_folders(task: Task, index: int) -> None:
    """Before an attempt of instance `index` starts: its own folder below each remote output
    of the plan's `task`, empty (what a failed attempt left there is never uploaded as if it
    were complete)."""
    for name in task.sinks:
        mine = Path(task.outputs[name]) / str(index)
        shutil.rmtree(mine, ignore_errors=True)
        mine.mkdir(parents=True)


async def upload_outputs(task: Task, index: int, progress: Callable[[str], None]) -> None:
    """Upload what instance `index` of the plan's `task` wrote below each remote output's
    local folder (its own: `<output>/<index>`), telling `progress` after each output."""
    name = uri = ""
    try:
        for name, uri in task.sinks.items():
            local = Path(task.outputs[name]) / str(index)
            n = await asyncio.to_thread(upload_dir, local, uri)
            progress(f"output {name}: {n} file(s) to {uri}")
    except Exception as e:  # whatever went wrong, the instance is not done
        raise TransferError(f"output {name} not stored ({uri}): {_said(e)}") from e


def log_location(task: Task, run_id: int, index: int, attempt: int) -> str:
    """Where an attempt's logs go: <logs>/<job>/<run>/<task>/<instance>/<attempt>."""
    base = f"{task.logs}".rstrip("/")
    return f"{base}/{task.job}/{run_id}/{task.name}/{index}/{attempt}"


async def ship_logs(
    where: str, *, stdout: Path, stderr: Path, shipped: Callable[[str, str], None]
) -> None:
    """Copy an ended attempt's stdout and stderr to `where`/{stdout,stderr}, calling
    `shipped(stream, uri)` after each."""
    try:
        for stream, path in (("stdout", stdout), ("stderr", stderr)):
            uri = f"{where}/{stream}"
            await asyncio.to_thread(_copy_log, path, uri)
            shipped(stream, uri)
    except Exception as e:
        raise TransferError(f"{where}: {e} (they stay in {stdout.parent})") from e


def _copy_log(path: Path, uri: str) -> None:
    """One log stream to its store; a stream the attempt never wrote to is an empty object."""
    if path.exists():
        store_for(uri).put(path, uri)
        return
    with tempfile.NamedTemporaryFile() as empty:
        store_for(uri).put(Path(empty.name), uri)
