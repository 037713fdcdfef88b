"""What the CLI and the web app call: validate, plan, apply, cancel, inspect, recover.

Functions here return typed values (`runner.api.results`) or exit codes and tell progress
to an `Output` (`runner.events`); they raise UserError for anything the user must fix and
never call sys.exit nor print. Callers read state through them, never through `State`.

- `planning`: load and check manifests, choose jobs and a cluster, plan;
- `applying`: apply (locks, recovery, runs, the engine under signals);
- `inspection`: runs, a run's tasks, instances, attempts and logs, what runs now;
- `cancellation`: cancel a run from elsewhere;
- `recovery`: whether a run's runner lives; closing a run whose runner died;
- `records`: run records next to the logs, and the manifests' git commit;
- `clusters`, `apps`, `storage`: clusters, Apps and object storage as manifests name them.
"""

from runner.api.applying import apply
from runner.api.apps import apps
from runner.api.cancellation import cancel
from runner.api.clusters import cluster_apply, cluster_report, cluster_status, clusters
from runner.api.inspection import (
    attempts,
    busy,
    follow_log,
    instances_done,
    log,
    progress,
    read_log,
    run,
    runs,
    status,
)
from runner.api.planning import on_cluster, only_jobs, plan, validate
from runner.api.results import (
    AppList,
    AppRevision,
    Attempt,
    AttemptLog,
    Busy,
    Cancellation,
    ClusterChanges,
    ClusterHeading,
    ClusterReport,
    Copied,
    Instance,
    LogHeading,
    LogStream,
    ObjectList,
    Plan,
    Run,
    RunList,
    RunProgress,
    RunStatus,
    TaskState,
    Validated,
)
from runner.api.storage import copy, object_bytes, objects

__all__ = [
    "AppList",
    "AppRevision",
    "Attempt",
    "AttemptLog",
    "Busy",
    "Cancellation",
    "ClusterChanges",
    "ClusterHeading",
    "ClusterReport",
    "Copied",
    "Instance",
    "LogHeading",
    "LogStream",
    "ObjectList",
    "Plan",
    "Run",
    "RunList",
    "RunProgress",
    "RunStatus",
    "TaskState",
    "Validated",
    "apply",
    "apps",
    "attempts",
    "busy",
    "cancel",
    "cluster_apply",
    "cluster_report",
    "cluster_status",
    "clusters",
    "copy",
    "follow_log",
    "instances_done",
    "log",
    "object_bytes",
    "objects",
    "on_cluster",
    "only_jobs",
    "plan",
    "progress",
    "read_log",
    "run",
    "runs",
    "status",
    "validate",
]
