"""The clusters manifests describe, as their executors see them: hosts, slots and load as
the scheduler reports them; host groups made to exist as written.

Every executor the API uses is made here (`executor_for`), so there is one way to get one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from runner.api.planning import validate
from runner.api.results import ClusterChanges, ClusterReport
from runner.errors import UserError

if TYPE_CHECKING:
    from runner.contracts import Executor
    from runner.model import Cluster

__all__ = ["cluster_apply", "cluster_report", "cluster_status", "clusters", "executor_for"]

_T = TypeVar("_T")


def executor_for(cluster: Cluster) -> Executor:
    """The executor plugin `cluster` names, made for it."""
    from runner.engine import load_executor

    return load_executor(cluster)


def clusters(paths: Sequence[str], name: str | None = None) -> list[Cluster]:
    """The Cluster documents of some manifests (only the one called `name`, if given)."""
    found = validate(paths, need_job=False).clusters
    if name is not None:
        if name not in found:
            raise UserError(f"no Cluster {name!r} in {', '.join(paths)}")
        return [found[name]]
    if not found:
        raise UserError(f"no Cluster document in {', '.join(paths)}")
    return list(found.values())


def cluster_status(cluster: Cluster) -> str | None:
    """Hosts, slots and load of `cluster` as its scheduler reports them; None when its
    executor has nothing to show beyond the manifest. A scheduler that does not answer is a
    UserError naming the cluster."""
    from runner import plugins
    from runner.contracts import ExecutorBase

    # an executor that keeps the default says nothing: it is not even made (a local one
    # would open its event queue for no answer)
    if plugins.load("executor", cluster.executor).cluster_status is ExecutorBase.cluster_status:
        return None
    return _asked(cluster, lambda ex: ex.cluster_status())


def cluster_report(cluster: Cluster) -> ClusterReport:
    """`cluster_status` for `runner cluster status`: an executor without one is an error."""
    status = cluster_status(cluster)
    if status is None:
        raise UserError(
            f"cluster {cluster.name!r}: the {cluster.executor} executor has no `cluster_status`"
        )
    return ClusterReport(cluster.name, cluster.executor, status)


def cluster_apply(cluster: Cluster) -> ClusterChanges:
    """Make `cluster`'s groups exist as written (SGE: host group @NAME, queue NAME.q); what
    changed. A cluster without groups is left alone."""
    if not cluster.groups:
        return ClusterChanges(cluster.name, None)
    changes = _asked(cluster, lambda ex: ex.cluster_apply())
    if changes is None:
        raise UserError(
            f"cluster {cluster.name!r}: the {cluster.executor} executor has no `cluster_apply`"
            " (groups are managed on SGE only)"
        )
    return ClusterChanges(cluster.name, tuple(changes))


def _asked(cluster: Cluster, question: Callable[[Executor], _T]) -> _T:
    from runner.batch_scheduler import SchedulerError

    try:
        return question(executor_for(cluster))
    except SchedulerError as e:
        raise UserError(f"cluster {cluster.name!r}: {e}") from None
