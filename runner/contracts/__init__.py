"""The plugin contracts, and everything else a plugin may use from the core.

Executor, kind and store plugins import from this package and nothing else of `runner`:

- `executor`: `Executor` (runs attempts somewhere; `ExecutorBase` to subclass, with
  `ExecutorSettings` for a Cluster's typed `settings:`), `LaunchSpec`, `Status`;
  `BatchSchedulerExecutor` is the base of executors for batch schedulers (SGE, Slurm);
- `kind`: `Kind` (turns a task into instances; `KindBase` to subclass), `InstanceSpec`,
  `command_argv`;
- `store`: `Store` (moves objects by URI scheme; `StoreBase` to subclass), `ObjectInfo`,
  `StoreError`; `stage_input` and `copy_verified` for kinds and stores that move data;
- the model a plugin is handed (`Task`, `Cluster`), errors for people (`UserError`,
  `Diagnostic`), templating (`render`), frame ranges (`parse_frames`).

Every method takes keyword-only arguments so the contracts can grow without breaking plugins.
Optional members are declared on the protocols; their defaults live in the base classes, and
`runner.plugins` checks a plugin against its contract when it loads it. The engine owns the
lifecycle: retries, timeouts, signals and polling cadence never live in a plugin.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runner.contracts.executor import (
    SECRET_ENV,
    Executor,
    ExecutorBase,
    ExecutorSettings,
    LaunchSpec,
    Status,
    public_env,
)
from runner.contracts.kind import InstanceSpec, Kind, KindBase, Problem, command_argv
from runner.contracts.store import ObjectInfo, Store, StoreBase, StoreError
from runner.errors import Diagnostic, UserError
from runner.manifest.frames import FrameError, parse_frames
from runner.manifest.template import render
from runner.model import Cluster, Task

if TYPE_CHECKING:
    from runner.batch_scheduler import (
        Batch,
        BatchSchedulerExecutor,
        BatchSettings,
        QueueEntry,
        SchedulerError,
    )
    from runner.state import default_state_dir
    from runner.stores import copy_verified, stage_input

# helpers built on the contracts above, imported when first asked for: they import the
# contracts themselves (and a plugin that needs none of them does not pay for them)
_HELPERS = {
    "Batch": "runner.batch_scheduler",
    "BatchSchedulerExecutor": "runner.batch_scheduler",
    "BatchSettings": "runner.batch_scheduler",
    "QueueEntry": "runner.batch_scheduler",
    "SchedulerError": "runner.batch_scheduler",
    "default_state_dir": "runner.state",
    "copy_verified": "runner.stores",
    "stage_input": "runner.stores",
}


def __getattr__(name: str) -> Any:
    if name not in _HELPERS:
        raise AttributeError(f"module 'runner.contracts' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HELPERS[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "SECRET_ENV",
    "Batch",
    "BatchSchedulerExecutor",
    "BatchSettings",
    "Cluster",
    "Diagnostic",
    "Executor",
    "ExecutorBase",
    "ExecutorSettings",
    "FrameError",
    "InstanceSpec",
    "Kind",
    "KindBase",
    "LaunchSpec",
    "ObjectInfo",
    "Problem",
    "QueueEntry",
    "SchedulerError",
    "Status",
    "Store",
    "StoreBase",
    "StoreError",
    "Task",
    "UserError",
    "command_argv",
    "copy_verified",
    "default_state_dir",
    "parse_frames",
    "public_env",
    "render",
    "stage_input",
]
