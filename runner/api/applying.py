"""Applying manifests: take every job's lock, close runs whose runner died, plan, start a
run per job with work, let the engine run it under the signals a person sends, record how
it ended. What happens is told to an `Output` as typed values (`runner.api.results`) and
engine events; how they look is its business.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.api.planning import selected, state_dir_for
from runner.api.records import git_commit, write_run_records
from runner.api.recovery import Followed, reclaim, stop_attempt
from runner.api.results import (
    Finished,
    NothingToDo,
    Planned,
    RecordNotStored,
    RunInterrupted,
    RunStarted,
)
from runner.runs import start_run
from runner.state import State

if TYPE_CHECKING:
    from runner.engine import Engine, Outcome
    from runner.events import Output
    from runner.plan import JobPlan

__all__ = ["apply"]


def apply(
    paths: Sequence[str],
    *,
    sets: Sequence[str] = (),
    state_dir: Path | None = None,
    force: bool = False,
    rerun: Sequence[str] = (),
    fail_fast: bool = False,
    output: Output | None = None,
    jobs: Sequence[str] = (),
    cluster: str | None = None,
) -> int:
    """Reconcile: run what the plan says, record everything; return the exit code.
    `jobs`: only these jobs of the manifests (default: all); `cluster`: run them there.
    `output`: where progress is told (default: text on stdout)."""
    from runner.engine import Engine
    from runner.events import Output
    from runner.lock import JobLock
    from runner.plan import make_plan

    out = output or Output()
    bundle = selected(paths, sets, jobs, cluster)
    sdir = state_dir_for(bundle, state_dir)
    state = State(sdir)
    locks: list[JobLock] = []
    try:
        for job in bundle.jobs:
            lock = JobLock(sdir, job)
            lock.acquire()
            locks.append(lock)
        # we hold every job's lock, so any run still marked running lost its runner
        reclaimed: dict[str, list[int]] = {}
        adopt: Followed = {}
        for job in bundle.jobs:
            for run in state.unfinished_runs(job):
                reclaimed.setdefault(job, []).append(run["id"])
                before = len(adopt)
                why = f"runner pid {run['pid']} stopped before the run ended"
                killed = reclaim(state, run["id"], job, why, adopt)
                out.show(RunInterrupted(run["id"], job, killed, len(adopt) - before))
        plans = make_plan(bundle, state, force=force, rerun=rerun)
        for jp in plans:
            # an interrupted run's stored record still says running: it gets its ending
            for rid in reclaimed.get(jp.job.name, ()):
                _record(out, state, jp, rid)
        work = [jp for jp in plans if jp.to_run]
        out.show(Planned(tuple(plans)))
        if not work:
            out.show(NothingToDo(sum(jp.total for jp in plans)))
            return 0
        commit = git_commit(bundle.base_dir)
        run_ids: dict[str, int] = {}
        for jp in work:
            # absolute: a run is retried (and its DAG drawn) from wherever one stands
            files = [str(Path(f).resolve()) for f in bundle.files]
            rid = start_run(state, jp, digest=bundle.digest, files=files, git_commit=commit)
            run_ids[jp.job.name] = rid
            out.show(RunStarted(rid, jp.job.name, jp.to_run))
            # stored as the run starts (and again as it ends): a runner that dies mid-run
            # still leaves what it was asked to do where others can read it
            _record(out, state, jp, rid)
        out.flush()
        reporter = out.events(
            {(jp.job.name, n): tp.to_run for jp in work for n, tp in jp.tasks.items()}
        )
        engine = Engine(
            state=state,
            plans=work,
            run_ids=run_ids,
            reporter=reporter,
            fail_fast=fail_fast,
            adopt=adopt,
        )
        try:
            outcome = asyncio.run(_run_with_signals(engine))
        finally:
            reporter.close()
            for left in engine.unclaimed():  # nobody follows them now: they must not run on
                stop_attempt(left.executor, left.handle)
        for job, rid in run_ids.items():
            state.finish_run(rid, outcome.states[job])
        for jp in work:
            _record(out, state, jp, run_ids[jp.job.name])
        out.show(Finished(run_ids, outcome.states, outcome.counts))
        return outcome.exit_code
    finally:
        for lock in locks:
            lock.release()
        state.close()


def _record(out: Output, state: State, jp: JobPlan, run_id: int) -> None:
    """Store the run's record; what could not be stored is told, and the run goes on."""
    for problem in write_run_records(state, jp, run_id):
        out.show(RecordNotStored(problem))


async def _run_with_signals(engine: Engine) -> Outcome:
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        # the first signal stops with a grace period; another one stops at once
        engine.cancel(
            "cancelled by `runner cancel`"
            if name == "SIGTERM" and engine.cancel_was_requested()
            else f"cancelled by {name}"
        )

    # SIGHUP too: a closed terminal or a dropped ssh session must not leave orphans behind
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, signal.Signals(sig).name)
    try:
        return await engine.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
