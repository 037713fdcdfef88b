"""Reading back what happened: runs, a run's tasks, instances and attempts, an attempt's
logs (also while it is written), what runs now. Everything comes back as typed values
(`runner.api.results`); a run's state is as a person should read it (a run whose runner
died shows as interrupted).

Read-only: it never changes the state (closing a dead runner's run is `recovery`'s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from runner.api.recovery import shown_state
from runner.api.results import (
    Attempt,
    AttemptLog,
    Busy,
    Instance,
    LogStream,
    Run,
    RunList,
    RunProgress,
    RunStatus,
    TaskState,
)
from runner.errors import UserError
from runner.state import State

__all__ = [
    "attempts",
    "busy",
    "follow_log",
    "instances_done",
    "log",
    "progress",
    "read_log",
    "run",
    "runs",
    "status",
]

_UNSETTLED = ("pending", "queued", "running", "retrying")


def open_state(state_dir: Path) -> State:
    """An existing state store, or a UserError saying there is none (for the API's modules:
    callers of the API read through the functions below)."""
    try:
        return State(state_dir, create=False)
    except FileNotFoundError:
        raise UserError(
            f"no runner state in {state_dir}: nothing has been applied here yet",
        ) from None


def _run(state: State, row: dict[str, Any]) -> Run:
    return Run(
        id=row["id"],
        job=row["job"],
        state=shown_state(state.directory, row),
        reason=row["reason"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        git_commit=row["git_commit"],
        pid=row["pid"],
        host=row["host"],
        manifest_digest=row["manifest_digest"],
        manifest_files=tuple(json.loads(row["manifest_files"] or "[]")),
        cancel_requested=bool(row["cancel_requested"]),
        user=row["user"],
    )


def _attempts(state: State, run_id: int, task: str, idx: int) -> tuple[Attempt, ...]:
    return tuple(Attempt(**a) for a in state.attempts(run_id, task, idx))


def runs(state_dir: Path, limit: int = 20) -> RunList:
    """The most recent runs, newest first."""
    state = open_state(state_dir)
    try:
        return RunList(tuple(_run(state, r) for r in state.runs(limit)))
    finally:
        state.close()


def run(state_dir: Path, run_id: int | None) -> Run | None:
    """One run (the latest when `run_id` is None), or None."""
    state = open_state(state_dir)
    try:
        row = state.run(run_id)
        return _run(state, row) if row is not None else None
    finally:
        state.close()


def status(state_dir: Path, run_id: int | None, *, attempts: bool = True) -> RunStatus:
    """A run (the latest when `run_id` is None) with its tasks and instances; a run whose
    runner is gone says so in its reason. `attempts`: also the attempts worth a line (of
    instances tried more than once, or still waiting)."""
    state = open_state(state_dir)
    try:
        row = state.run(run_id)
        if row is None:
            raise UserError(f"no run {run_id}" if run_id is not None else "no runs yet")
        r = _run(state, row)
        if r.state != row["state"]:
            r = _gone(r)
        instances = tuple(Instance(*i) for i in state.instance_rows(r.id))
        worth = {
            (i.task, i.idx): _attempts(state, r.id, i.task, i.idx)
            for i in instances
            if attempts and (i.attempts > 1 or i.state in ("queued", "running"))
        }
        tasks = tuple(TaskState(**t) for t in state.tasks(r.id))
        return RunStatus(r, tasks, instances, worth)
    finally:
        state.close()


def _gone(r: Run) -> Run:
    from dataclasses import replace

    return replace(r, reason=f"runner pid {r.pid} is gone; `runner apply` finishes the job")


def progress(state_dir: Path, run_id: int) -> RunProgress | None:
    """What a page following run `run_id` needs (states and counts), or None if there is no
    such run."""
    state = open_state(state_dir)
    try:
        row = state.run(run_id)
        if row is None:
            return None
        counts: dict[str, dict[str, int]] = {}
        states: dict[str, str] = {}
        done = 0
        for task, idx, st in state.instance_states(run_id):
            c = counts.setdefault(task, {})
            c[st] = c.get(st, 0) + 1
            states[f"{task}/{idx}"] = st
            done += st in ("succeeded", "skipped")
        return RunProgress(
            state=shown_state(state.directory, row),
            done=done,
            total=len(states),
            tasks={t["task"]: t["state"] for t in state.tasks(run_id)},
            counts=counts,
            instances=states,
        )
    finally:
        state.close()


def instances_done(state_dir: Path, run_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """run -> (instances done, instances) for each of `run_ids`."""
    state = open_state(state_dir)
    try:
        return state.progress(run_ids)
    finally:
        state.close()


def attempts(state_dir: Path, run_id: int, task: str, idx: int) -> tuple[Attempt, ...]:
    """The attempts of one instance, first first (none if there is no such instance)."""
    state = open_state(state_dir)
    try:
        return _attempts(state, run_id, task, idx)
    finally:
        state.close()


def busy(state_dir: Path) -> tuple[Busy, ...]:
    """What runs now: per live run, task and executor, the attempts queued or running (a run
    whose runner died still says running; its attempts do not run)."""
    state = open_state(state_dir)
    try:
        found = []
        runs_: dict[int, Run | None] = {}
        for b in state.busy():
            if b["run_id"] not in runs_:
                row = state.run(b["run_id"])
                runs_[b["run_id"]] = _run(state, row) if row is not None else None
            r = runs_[b["run_id"]]
            if r is not None and r.state == "running":
                found.append(Busy(r, b["task"], b["executor"], b["running"], b["queued"]))
        return tuple(found)
    finally:
        state.close()


def _streams(a: Attempt, stream: str) -> list[tuple[Literal["stdout", "stderr"], Path]]:
    both: tuple[tuple[Literal["stdout", "stderr"], str], ...] = (
        ("stdout", a.stdout),
        ("stderr", a.stderr),
    )
    return [(name, Path(path)) for name, path in both if stream in ("both", name[3:])]


def log(
    state_dir: Path, run_id: int, task: str, idx: int, attempt: int | None, stream: str
) -> AttemptLog:
    """Where the streams of an attempt are (`stream`: out, err or both; the last attempt
    when `attempt` is None): the file it wrote here, and the copy its task's `logs` keeps,
    if any. `read_log` reads one."""
    state = open_state(state_dir)
    try:
        if state.run(run_id) is None:
            raise UserError(f"no run {run_id}; see `runner runs`")
        tried = _attempts(state, run_id, task, idx)
        if not tried:
            known = sorted({i["task"] for i in state.instances(run_id)})
            raise UserError(
                f"run {run_id} has no attempt of {task}/{idx}"
                + (f"; tasks in this run: {', '.join(known)}" if known else "")
            )
        chosen = (
            tried[-1] if attempt is None else next((a for a in tried if a.attempt == attempt), None)
        )
        if chosen is None:
            raise UserError(
                f"{task}/{idx} in run {run_id} has attempts 1..{len(tried)}, not {attempt}"
            )
        copies = state.log_copies(run_id, task, idx, chosen.attempt)
    finally:
        state.close()
    return AttemptLog(
        task,
        idx,
        chosen.attempt,
        tuple(LogStream(name, path, copies.get(name)) for name, path in _streams(chosen, stream)),
    )


def read_log(stream: LogStream) -> bytes:
    """A log stream: its file here, else the copy its run stored (another machine's run)."""
    if stream.path.exists():
        return stream.path.read_bytes()
    if stream.copy is None:
        return b""
    import tempfile

    from runner.stores import StoreError, store_for

    with tempfile.TemporaryDirectory() as tmp:
        try:
            store_for(stream.copy).get(stream.copy, Path(tmp) / "log")
        except StoreError as e:
            raise UserError(f"log not readable here or at {stream.copy}: {e}") from None
        return (Path(tmp) / "log").read_bytes()


def follow_log(
    state_dir: Path, run_id: int, task: str, idx: int, only: int | None, stream: str
) -> Iterator[bytes]:
    """An instance's output as it is written: waits for it to start, and goes on through its
    retries (or only attempt `only`) until it ends or the run does."""
    state = open_state(state_dir)
    try:
        if state.run(run_id) is None:
            raise UserError(f"no run {run_id}; see `runner runs`")
        offsets: dict[Path, int] = {}
        while True:
            # read the state first, then the files: what was written before "done" is all shown
            row = state.run(run_id)
            rows = [i for i in state.instances(run_id, task) if i["idx"] == idx]
            if row is None or not rows:
                raise UserError(f"run {run_id} has no instance {task}/{idx}")
            settled = rows[0]["state"] not in _UNSETTLED
            tried = [a for a in _attempts(state, run_id, task, idx) if only in (None, a.attempt)]
            for a in tried:
                for _, path in _streams(a, stream):
                    if path.exists():
                        with open(path, "rb") as f:
                            f.seek(offsets.get(path, 0))
                            chunk = f.read()
                        offsets[path] = offsets.get(path, 0) + len(chunk)
                        yield chunk
            if only is not None and tried and tried[0].state != "running":
                return
            if settled or shown_state(state.directory, row) != "running":
                return
            time.sleep(0.2)
    finally:
        state.close()
