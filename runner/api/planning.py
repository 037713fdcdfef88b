"""What is asked of the manifests: loading and checking them, choosing jobs and a cluster
(`--job`, `--cluster`), and planning (what `apply` would run, and why) without running it.

The manifests are loaded here and nowhere else in the API (`validate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from runner.api.results import Plan
from runner.errors import Diagnostic, UserError
from runner.manifest.loader import did_you_mean, load
from runner.model import Bundle
from runner.state import State, default_state_dir

__all__ = ["on_cluster", "only_jobs", "plan", "state_dir_for", "validate"]


def validate(paths: Sequence[str], sets: Sequence[str] = (), *, need_job: bool = True) -> Bundle:
    """Load and check manifests; raise UserError with every problem. `need_job`: manifests
    without a Job are an error (not for Apps and Clusters alone)."""
    return load(paths, sets, need_job=need_job)


def only_jobs(bundle: Bundle, jobs: Sequence[str]) -> Bundle:
    """`bundle` keeping only the jobs named (all of them when none are); unknown names are
    an error."""
    if not jobs:
        return bundle
    unknown = [j for j in jobs if j not in bundle.jobs]
    if unknown:
        raise UserError([
            Diagnostic(f"--job {j}: no job {j!r} in these manifests", "--job",
                       hint=did_you_mean(j, bundle.jobs))
            for j in unknown
        ])  # fmt: skip
    return replace(bundle, jobs={name: job for name, job in bundle.jobs.items() if name in jobs})


def on_cluster(bundle: Bundle, cluster: str | None) -> Bundle:
    """`bundle` with every task of its jobs on the Cluster named `cluster` (one of the
    manifests'), whatever cluster the tasks name; unchanged when `cluster` is None. Where a
    task runs is not part of what it is: work done on one cluster is not redone on another."""
    if cluster is None:
        return bundle
    target = bundle.clusters.get(cluster)
    if target is None:
        known = ", ".join(sorted(bundle.clusters)) or "none"
        raise UserError(Diagnostic(
            f"--cluster {cluster}: no Cluster {cluster!r} in these manifests (they have: "
            f"{known})", "--cluster", hint=did_you_mean(cluster, bundle.clusters),
        ))  # fmt: skip
    jobs = {
        name: replace(job, tasks={n: replace(t, cluster=target) for n, t in job.tasks.items()})
        for name, job in bundle.jobs.items()
    }
    return replace(bundle, jobs=jobs)


def state_dir_for(bundle: Bundle, state_dir: Path | None) -> Path:
    """The state folder of `bundle`: the one given, else $RUNNER_STATE_DIR, else `.runner/`
    beside its (first) manifest."""
    return state_dir or default_state_dir(bundle.base_dir)


def selected(
    paths: Sequence[str], sets: Sequence[str], jobs: Sequence[str], cluster: str | None
) -> Bundle:
    """The manifests loaded, with only the jobs asked for, on the cluster asked for."""
    return on_cluster(only_jobs(validate(paths, sets), jobs), cluster)


def plan(
    paths: Sequence[str],
    *,
    sets: Sequence[str] = (),
    state_dir: Path | None = None,
    force: bool = False,
    rerun: Sequence[str] = (),
    jobs: Sequence[str] = (),
    cluster: str | None = None,
) -> Plan:
    """What `apply` would do, reading state but running nothing."""
    from runner.plan import make_plan

    bundle = selected(paths, sets, jobs, cluster)
    sdir = state_dir_for(bundle, state_dir)
    state = State(sdir) if (sdir / "state.db").exists() else None
    try:
        return Plan(bundle, tuple(make_plan(bundle, state, force=force, rerun=rerun)))
    finally:
        if state is not None:
            state.close()
