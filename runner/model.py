"""The model: what a checked set of manifests says, as the loader hands it to the planner,
the engine and the plugins (jobs of tasks, each with its App merged in, values typed, paths
absolute, and the cluster it runs on). The YAML documents' own shape is in
`runner.manifest.models`; loading and checking is `runner.manifest.loader`.

Frozen: nothing changes a model object once the loader has returned it. What the planner
derives (local paths of remote inputs and outputs, the instance count a kind works out, the
image's ID) lives in the plan, on a copy made with `dataclasses.replace` (`TaskPlan.task`);
a narrower bundle (`--job`, `--cluster`) is a new one made the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.manifest.models import AppDoc
from runner.manifest.params import to_text

__all__ = ["Bundle", "Cluster", "Job", "Task"]


@dataclass(frozen=True)
class Cluster:
    """Where a task runs."""

    name: str
    executor: str
    slots: int | None
    queue: str | None
    settings: dict[str, Any]
    groups: dict[str, tuple[list[str], int]] = field(default_factory=dict)  # hosts, slots


@dataclass(frozen=True)
class Task:
    """A task with everything resolved: app merged in, values typed, paths absolute.

    As loaded, `inputs` and `outputs` are what the manifest says (URIs for remote ones) and
    `sources`, `sinks` and `image_id` are empty; the plan's copy of the task has them bound."""

    job: str
    name: str
    kind: str
    app: str | None
    command: str | list[str]
    params: dict[str, Any]
    param_types: dict[str, str]
    env: dict[str, str]
    workdir: Path
    timeout: float | None
    retries: int
    retry_on: tuple[int, ...] | None
    retry_backoff: float
    instances: int
    depends_on: tuple[str, ...]
    cluster: Cluster
    inputs: dict[str, str]
    outputs: dict[str, str]
    logs: str | None
    base_dir: Path
    file: str
    # inputs that a store stages: name -> URI (`inputs` then holds the local copy's path)
    sources: dict[str, str] = field(default_factory=dict)
    # outputs that a store receives: name -> URI (`outputs` then holds the local folder; each
    # instance writes below it in a folder of its own, uploaded when the instance succeeds)
    sinks: dict[str, str] = field(default_factory=dict)
    # the OCI image the command runs in (see runner.containers), and how it is run
    image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    runtime: str | None = None
    run_args: tuple[str, ...] = ()
    image_id: str | None = None  # the image's ID, resolved when the plan is made

    def values(self) -> dict[str, str]:
        """Text for every placeholder except the per-instance ones."""
        v = {k: to_text(x) for k, x in self.params.items()}
        v.update(self.inputs)
        v.update(self.outputs)
        v["task"] = self.name
        v["job"] = self.job
        v["instance_count"] = str(self.instances)
        return v


@dataclass(frozen=True)
class Job:
    """A job's tasks in dependency order."""

    name: str
    file: str
    tasks: dict[str, Task]
    order: tuple[str, ...]
    base_dir: Path


@dataclass(frozen=True)
class Bundle:
    """Everything one `apply` works on."""

    jobs: dict[str, Job]
    files: tuple[str, ...]
    digest: str
    base_dir: Path
    documents: int = 0
    apps: dict[str, AppDoc] = field(default_factory=dict)
    clusters: dict[str, Cluster] = field(default_factory=dict)
