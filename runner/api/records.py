"""Run records: a run's own account, as JSON lines, stored next to its logs in every `logs`
location its tasks name, so it can be audited from any machine; and the git commit of the
manifests, which a run records as it starts.

It reads the state and writes to stores; it must not change the state.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import UserError
from runner.state import State
from runner.stores import StoreError, store_for

if TYPE_CHECKING:
    from runner.plan import JobPlan

__all__ = ["git_commit", "write_run_records"]

_RECORD_RUN = (
    "id", "job", "state", "reason", "started_at", "ended_at", "manifest_digest",
    "manifest_files", "git_commit", "host",
)  # fmt: skip


def write_run_records(state: State, jp: JobPlan, run_id: int) -> list[str]:
    """A run's record, as JSON lines, next to its logs in every `logs` location its tasks
    name (<logs>/<job>/<run>/run.jsonl): auditable from any machine. Returns problems."""
    places = sorted({tp.task.logs for tp in jp.tasks.values() if tp.task.logs})
    if not places:
        return []
    run = state.run(run_id) or {}
    lines = [{"type": "run", **{k: run.get(k) for k in _RECORD_RUN}}]
    for t in state.tasks(run_id):
        task = jp.tasks[t["task"]].task if t["task"] in jp.tasks else None
        lines.append(
            {
                "type": "task",
                **t,
                "params": task.params if task else None,
                "kind": task.kind if task else None,
                "app": task.app if task else None,
            }
        )
        for inst in state.instances(run_id, t["task"]):
            for a in state.attempts(run_id, t["task"], inst["idx"]):
                copies = state.log_copies(run_id, t["task"], inst["idx"], a["attempt"])
                lines.append(
                    {
                        "type": "attempt",
                        "task": t["task"],
                        "instance": inst["idx"],
                        **{k: a[k] for k in ("attempt", "state", "exit_code", "reason")},
                        **{k: a[k] for k in ("started_at", "ended_at", "executor")},
                        "stdout": copies.get("stdout", a["stdout"]),
                        "stderr": copies.get("stderr", a["stderr"]),
                    }
                )
    text = "".join(json.dumps(line, default=str, sort_keys=True) + "\n" for line in lines)
    problems = []
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
        f.write(text)
        f.flush()
        for place in places:
            uri = f"{place.rstrip('/')}/{jp.job.name}/{run_id}/run.jsonl"
            try:
                store_for(uri).put(Path(f.name), uri)
            except (StoreError, OSError, UserError) as e:
                problems.append(f"run record not stored at {uri}: {e}")
    return problems


def git_commit(directory: Path) -> str | None:
    """HEAD of the git repository holding `directory`, '+dirty' when it has changes."""
    for d in (directory, *directory.parents):
        if (d / ".git").exists():
            break
    else:
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0:
            return None
        # untracked files (outputs, .runner/ itself) do not make the manifests dirty
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
