"""Starting a run: a new run of a job in the state store, with its plan recorded (every task
and instance, run or skip, and why) before anything of it runs. The planner only reads state;
this is where a plan becomes a run. Running it is the engine's.
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.plan import JobPlan
from runner.state import State

__all__ = ["start_run"]


def start_run(
    state: State, jp: JobPlan, *, digest: str, files: Sequence[str], git_commit: str | None
) -> int:
    """A new run of `jp`'s job with the plan recorded: every task and instance, run or skip,
    with its reason. Returns the run id."""
    rid = state.start_run(job=jp.job.name, digest=digest, files=files, git_commit=git_commit)
    state.record_plan(
        rid,
        [
            (n, "pending" if tp.to_run else "skipped", None, len(tp.instances))
            for n, tp in jp.tasks.items()
        ],
        [
            (
                n,
                i.spec.index,
                "pending" if i.action == "run" else "skipped",
                i.reason,
                i.fingerprint,
                i.spec.description,
            )
            for n, tp in jp.tasks.items()
            for i in tp.instances
        ],
    )
    return rid
