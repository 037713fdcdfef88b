"""What the CLI (and later the web UI) calls: validate, plan, apply, cancel, inspect.

Functions here return data or exit codes and print through the given stream; they raise
UserError for anything the user must fix. They never call sys.exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from runner.errors import UserError

if TYPE_CHECKING:
    from runner.engine import Engine, Outcome
from runner.manifest.loader import Bundle, Cluster, load
from runner.plan import JobPlan, make_plan, start_run
from runner.state import Adoption, State, default_state_dir
from runner.stores import StoreError, store_for

__all__ = ["apply", "cancel", "plan", "plan_as_json", "validate"]


def validate(paths: Sequence[str], sets: Sequence[str] = ()) -> Bundle:
    """Load and check manifests; raise UserError with every problem."""
    return load(paths, sets)


def only_jobs(bundle: Bundle, jobs: Sequence[str]) -> Bundle:
    """`bundle` keeping only the jobs named (all of them when none are); unknown names are
    an error."""
    if not jobs:
        return bundle
    from runner.errors import Diagnostic
    from runner.manifest.loader import did_you_mean

    unknown = [j for j in jobs if j not in bundle.jobs]
    if unknown:
        raise UserError([
            Diagnostic(f"--job {j}: no job {j!r} in these manifests", "--job",
                       hint=did_you_mean(j, bundle.jobs))
            for j in unknown
        ])  # fmt: skip
    bundle.jobs = {name: job for name, job in bundle.jobs.items() if name in jobs}
    return bundle


def on_cluster(bundle: Bundle, cluster: str | None) -> Bundle:
    """`bundle` with every task of its jobs on the Cluster named `cluster` (one of the
    manifests'), whatever cluster the tasks name; unchanged when `cluster` is None. Where a
    task runs is not part of what it is: work done on one cluster is not redone on another."""
    if cluster is None:
        return bundle
    from runner.errors import Diagnostic
    from runner.manifest.loader import did_you_mean

    target = bundle.clusters.get(cluster)
    if target is None:
        known = ", ".join(sorted(bundle.clusters)) or "none"
        raise UserError(Diagnostic(
            f"--cluster {cluster}: no Cluster {cluster!r} in these manifests (they have: "
            f"{known})", "--cluster", hint=did_you_mean(cluster, bundle.clusters),
        ))  # fmt: skip
    for job in bundle.jobs.values():
        job.tasks = {name: replace(t, cluster=target) for name, t in job.tasks.items()}
    return bundle


def _state_for(bundle: Bundle, state_dir: Path | None) -> Path:
    return state_dir or default_state_dir(bundle.base_dir)


def plan(
    paths: Sequence[str],
    *,
    sets: Sequence[str] = (),
    state_dir: Path | None = None,
    force: bool = False,
    rerun: Sequence[str] = (),
    jobs: Sequence[str] = (),
    cluster: str | None = None,
) -> tuple[Bundle, list[JobPlan]]:
    """What `apply` would do, reading state but running nothing."""
    bundle = on_cluster(only_jobs(load(paths, sets), jobs), cluster)
    sdir = _state_for(bundle, state_dir)
    state = State(sdir) if (sdir / "state.db").exists() else None
    try:
        return bundle, make_plan(bundle, state, force=force, rerun=rerun)
    finally:
        if state is not None:
            state.close()


def plan_as_json(plans: list[JobPlan]) -> dict[str, Any]:
    """The plan for machines."""
    return {
        "jobs": [
            {
                "job": jp.job.name,
                "to_run": jp.to_run,
                "total": jp.total,
                "tasks": [
                    {
                        "task": name,
                        "action": tp.action,
                        "instances": [
                            {
                                "index": i.spec.index,
                                "action": i.action,
                                "reason": i.reason,
                                "fingerprint": i.fingerprint,
                            }
                            for i in tp.instances
                        ],
                    }
                    for name, tp in jp.tasks.items()
                ],
            }
            for jp in plans
        ]
    }


def print_plan(plans: list[JobPlan], out: TextIO, *, per_instance: bool) -> None:
    """Per job and task: how much runs and why; per instance when asked."""
    for jp in plans:
        out.write(
            f"job {jp.job.name} ({jp.job.file}): {jp.to_run} to run, "
            f"{jp.total - jp.to_run} up to date\n"
        )
        for name, tp in jp.tasks.items():
            n = len(tp.instances)
            out.write(f"  {tp.action:4} {name} ({tp.to_run}/{n} instance{'s' if n != 1 else ''})\n")
            if per_instance:
                for i in tp.instances:
                    desc = f" {i.spec.description}" if i.spec.description else ""
                    out.write(f"      {i.action:4} [{i.spec.index}]{desc}: {i.reason}\n")
            else:
                reasons: dict[str, int] = {}
                for i in tp.instances:
                    if i.action == "run":
                        reasons[i.reason] = reasons.get(i.reason, 0) + 1
                for reason, count in reasons.items():
                    out.write(f"      {count} x {reason}\n")


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


_RECLAIMERS: dict[str, Any] = {}


def _reclaimer(executor: str) -> Any:
    """One executor per name for a clean-up: a scheduler is asked about the queue once."""
    from runner.engine import load_executor

    if executor not in _RECLAIMERS:
        _RECLAIMERS[executor] = load_executor(Cluster("reclaim", executor, 1, None, {}))
    return _RECLAIMERS[executor]


def _stop_attempt(executor: str, handle: str) -> bool:
    """Stop an attempt a runner that died left behind, if it still runs; True if it did."""
    try:
        ex = _reclaimer(executor or "local")
    except UserError:
        return False
    return bool(ex.reclaim(handle=handle))


def _reclaim(
    state: State,
    run: dict[str, Any],
    why: str,
    adopt: dict[tuple[str, str, int], Adoption] | None = None,
) -> int:
    """Close a run whose runner is gone. Attempts it left running are killed, or, given
    `adopt` and where their executor can follow an attempt from its handle alone (a cluster
    scheduler), left running and put in `adopt` for the next run. Returns how many killed."""
    followed: dict[tuple[str, str, int], Adoption] = {} if adopt is None else adopt
    doomed = []
    for a in state.adoptable(run["id"]):
        try:
            ex = _reclaimer(a["executor"] or "local")
        except UserError:
            continue
        if not a["handle"]:
            continue
        can_follow = getattr(ex, "can_follow", None)
        if (
            adopt is not None
            and "reattach" in getattr(ex, "capabilities", ())
            and (can_follow is None or can_follow(handle=a["handle"]))
        ):
            followed[(run["job"], a["task"], a["idx"])] = Adoption(
                executor=a["executor"],
                handle=a["handle"],
                fingerprint=a["fingerprint"],
                stdout=a["stdout"],
                stderr=a["stderr"],
                started_at=a["started_at"] if a["state"] == "running" else None,
            )
        else:
            doomed.append((ex, a["handle"]))
    # containers first: killing their `podman run` (below) does not stop them
    _remove_leftover_containers(state, run, followed)
    killed = sum(1 for ex, handle in doomed if ex.reclaim(handle=handle))
    state.close_interrupted(run["id"], run["job"], why)
    return killed


def _remove_leftover_containers(
    state: State, run: dict[str, Any], adopt: dict[tuple[str, str, int], Adoption]
) -> int:
    """The containers a dead runner's attempts left on this host (killing its `podman run`
    does not stop them), except those of attempts the next run follows."""
    import shutil

    from runner import containers

    removed = 0
    for name in ("podman", "docker"):
        runtime = shutil.which(name)
        if runtime is None:
            continue
        labels = {"runner.state": containers.state_label(state.directory),
                  "runner.run": str(run["id"])}  # fmt: skip
        gone = []
        for container, key in containers.leftovers(runtime, labels):
            job, task, idx = [*key.split("/"), "", "", ""][:3]
            if (job, task, int(idx) if idx.isdigit() else -1) not in adopt:
                gone.append(container)
        containers.remove_now(runtime, gone)
        removed += len(gone)
    return removed


def apply(
    paths: Sequence[str],
    *,
    sets: Sequence[str] = (),
    state_dir: Path | None = None,
    force: bool = False,
    rerun: Sequence[str] = (),
    fail_fast: bool = False,
    output: str = "text",
    out: TextIO | None = None,
    jobs: Sequence[str] = (),
    cluster: str | None = None,
) -> int:
    """Reconcile: run what the plan says, record everything; return the exit code.
    `jobs`: only these jobs of the manifests (default: all); `cluster`: run them there."""
    from runner.engine import Engine
    from runner.events import make_reporter
    from runner.lock import JobLock

    out = out or sys.stdout
    bundle = on_cluster(only_jobs(load(paths, sets), jobs), cluster)
    sdir = _state_for(bundle, state_dir)
    state = State(sdir)
    locks: list[JobLock] = []
    try:
        for job in bundle.jobs:
            lock = JobLock(sdir, job)
            lock.acquire()
            locks.append(lock)
        # we hold every job's lock, so any run still marked running lost its runner
        reclaimed: dict[str, list[int]] = {}
        adopt: dict[tuple[str, str, int], Adoption] = {}
        for job in bundle.jobs:
            for run in state.unfinished_runs(job):
                reclaimed.setdefault(job, []).append(run["id"])
                before = len(adopt)
                killed = _reclaim(
                    state, run, f"runner pid {run['pid']} stopped before the run ended", adopt
                )
                if output == "json":
                    out.write(
                        json.dumps(
                            {
                                "event": "run-interrupted",
                                "run": run["id"],
                                "job": job,
                                "killed": killed,
                                "followed": len(adopt) - before,
                            }
                        )
                        + "\n"
                    )
                else:
                    out.write(
                        f"run {run['id']} of job {job} was interrupted (its runner died); "
                        f"{killed} leftover process group(s) killed"
                        + (
                            f", {len(adopt) - before} attempt(s) still with the cluster's "
                            "scheduler will be followed, not submitted again"
                            if len(adopt) > before
                            else ""
                        )
                        + "\n"
                    )
        plans = make_plan(bundle, state, force=force, rerun=rerun)
        for jp in plans:
            # an interrupted run's stored record still says running: it gets its ending
            for rid in reclaimed.get(jp.job.name, ()):
                for problem in write_run_records(state, jp, rid):
                    out.write(f"warning: {problem}\n")
        work = [jp for jp in plans if jp.to_run]
        if output == "json":
            out.write(json.dumps({"event": "plan", **plan_as_json(plans)}) + "\n")
        else:
            print_plan(plans, out, per_instance=False)
        if not work:
            total = sum(jp.total for jp in plans)
            if output == "json":
                out.write(json.dumps({"event": "nothing-to-do", "instances": total}) + "\n")
            else:
                out.write(f"Nothing to do: all {total} instances are up to date.\n")
            return 0
        commit = git_commit(bundle.base_dir)
        run_ids: dict[str, int] = {}
        for jp in work:
            # absolute: a run is retried (and its DAG drawn) from wherever one stands
            files = [str(Path(f).resolve()) for f in bundle.files]
            rid = start_run(state, jp, digest=bundle.digest, files=files, git_commit=commit)
            run_ids[jp.job.name] = rid
            if output == "json":
                out.write(
                    json.dumps(
                        {
                            "event": "run-started",
                            "run": rid,
                            "job": jp.job.name,
                            "to_run": jp.to_run,
                        }
                    )
                    + "\n"
                )
            else:
                out.write(f"run {rid}: job {jp.job.name}, {jp.to_run} instance(s) to run\n")
            # stored as the run starts (and again as it ends): a runner that dies mid-run
            # still leaves what it was asked to do where others can read it
            for problem in write_run_records(state, jp, rid):
                out.write(f"warning: {problem}\n")
        out.flush()
        reporter = make_reporter(
            output, {(jp.job.name, n): tp.to_run for jp in work for n, tp in jp.tasks.items()}
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
                _stop_attempt(left.executor, left.handle)
        for job, rid in run_ids.items():
            st = outcome.states[job]
            state.finish_run(rid, st)
        for jp in work:
            for problem in write_run_records(state, jp, run_ids[jp.job.name]):
                out.write(f"warning: {problem}\n")
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(outcome.counts.items()))
        if output == "json":
            out.write(
                json.dumps(
                    {
                        "event": "done",
                        "runs": run_ids,
                        "states": outcome.states,
                        "counts": outcome.counts,
                    }
                )
                + "\n"
            )
        else:
            for job, rid in run_ids.items():
                out.write(f"run {rid}: job {job} {outcome.states[job]} ({counts})\n")
                if outcome.states[job] != "succeeded":
                    out.write(f"  see `runner status {rid}` and `runner logs {rid} TASK/INDEX`\n")
        return outcome.exit_code
    finally:
        for lock in locks:
            lock.release()
        state.close()


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


_RECORD_RUN = (
    "id", "job", "state", "reason", "started_at", "ended_at", "manifest_digest",
    "manifest_files", "git_commit", "host",
)  # fmt: skip


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


def when(ts: float | None) -> str:
    """A moment as people read it (local time), or '-'."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def took(start: float | None, end: float | None) -> str:
    """How long from `start` to `end` (to now while it goes on), or '-'."""
    import time

    return "-" if start is None else f"{(end or time.time()) - start:.1f}s"


def _is_runner(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"runner" in cmd


def shown_state(run: dict[str, Any]) -> str:
    """A run's state as a person should read it: a run still marked running whose runner
    process is gone (kill -9, a crash) is shown as interrupted."""
    if (
        run["state"] == "running"
        and run["host"] == socket.gethostname()
        and not (run["pid"] and _is_runner(run["pid"]))
    ):
        return "interrupted"
    return str(run["state"])


def cancel(state_dir: Path, run_id: int) -> str:
    """Ask the runner of `run_id` to stop (SIGTERM); tidy up if that runner is gone."""
    state = open_state(state_dir)
    try:
        run = state.run(run_id)
        if run is None:
            raise UserError(f"no run {run_id} in {state_dir}; see `runner runs`")
        if run["state"] != "running":
            return f"run {run_id} is not running (it {run['state']})"
        state.request_cancel(run_id)
        pid = run["pid"]
        if run["host"] == socket.gethostname() and pid and _is_runner(pid):
            os.kill(pid, signal.SIGTERM)
            return f"asked runner pid {pid} to cancel run {run_id}"
        if run["host"] != socket.gethostname():
            raise UserError(
                f"run {run_id} is run by a runner on host {run['host']!r}; cancel it there"
            )
        killed = _reclaim(state, run, "cancelled; its runner had already stopped")
        return (
            f"run {run_id}'s runner was gone; marked interrupted, {killed} process group(s) killed"
        )
    finally:
        state.close()


def open_state(state_dir: Path) -> State:
    """An existing state store, or a UserError saying there is none."""
    try:
        return State(state_dir, create=False)
    except FileNotFoundError:
        raise UserError(
            f"no runner state in {state_dir}: nothing has been applied here yet",
        ) from None
