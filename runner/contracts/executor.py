"""The executor contract: an executor runs attempts somewhere (processes here, array jobs on
a batch scheduler) and reports on them, all at once, when asked.

The engine owns the lifecycle: retries, timeouts, signals and polling cadence never live in an
executor. An executor plugin subclasses `ExecutorBase` (which gives every optional member its
default) and registers the class under the entry point group `runner.executors`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = [
    "SECRET_ENV",
    "Executor",
    "ExecutorBase",
    "ExecutorSettings",
    "LaunchSpec",
    "Status",
    "public_env",
]


# The runner's secrets: its storage keys (see `runner oss`), with which it stages data, and
# the dashboard's first password. An executor never passes them on to an instance, whose
# command could print them to its log, nor to a scheduler, which would keep them.
SECRET_ENV = frozenset({"OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN", "RUNNER_WEB_PASSWORD"})


def public_env() -> dict[str, str]:
    """The runner's environment without its secrets: what it may hand on to anything."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


@dataclass(frozen=True)
class LaunchSpec:
    """One attempt of one instance, ready for an executor."""

    key: str  # job/task/index/attempt, unique within a run
    argv: list[str]
    env: dict[str, str]  # added to the executor's base environment
    workdir: Path
    stdout: Path
    stderr: Path


@dataclass(frozen=True)
class Status:
    """What an executor knows about a handle."""

    state: Literal["queued", "running", "exited", "lost"]
    exit_code: int | None = None  # signals as 128 + signal number
    message: str | None = None
    started_at: float | None = None  # when it really began (epoch seconds), if known


class ExecutorSettings(BaseModel):
    """A Cluster's `settings:` as an executor reads them. An executor declares its own
    subclass (`settings_model`), with a type, default and description for every key: `runner
    validate` checks a Cluster against it (an unknown key is an error with a did-you-mean),
    and the JSON Schema of manifests includes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Executor(Protocol):
    """Runs attempts somewhere. Constructed as `factory(cluster=Cluster)`; the cluster's
    `settings` are valid for the executor's `settings_model` by then (the loader checked)."""

    # what the executor can do ("arrays", "queue", "reattach"), for `runner plugins` and the
    # engine's choices
    capabilities: frozenset[str]
    # the model of a Cluster's `settings:` for this executor
    settings_model: ClassVar[type[ExecutorSettings]]
    # an executor that queues attempts itself takes up to this many attempts beyond the
    # cluster's slots; until one really starts, poll() says "queued" for it, and its timeout
    # and elapsed time count from the first poll that says otherwise
    prefetch: int

    async def submit(self, *, spec: LaunchSpec) -> str:
        """Start an attempt; return a small serialisable handle."""

    async def poll(self, *, handles: Sequence[str]) -> dict[str, Status]:
        """Status of every handle, in one backend query."""

    async def wait(self, *, timeout: float) -> None:
        """Return when something may have changed, or after `timeout` seconds."""

    async def cancel(self, *, handles: Sequence[str]) -> None:
        """Stop these attempts and everything they started."""

    def logs(self, *, handle: str) -> tuple[Path, Path] | None:
        """Where the attempt's stdout and stderr are, if the executor knows."""

    def reclaim(self, *, handle: str) -> bool:
        """A handle from a runner that died: stop it if still running; True if it was."""

    async def close(self) -> None:
        """Release resources; running attempts have been cancelled or finished by now."""

    def can_follow(self, *, handle: str) -> bool:
        """Whether a handle from a runner that died can be followed to its end by this
        executor from the handle alone (a batch job still in the queue), rather than
        stopped by `reclaim`."""

    def cluster_status(self) -> str | None:
        """Hosts, slots and load of the cluster as its scheduler reports them (`runner
        cluster status`, the dashboard's Clusters page), or None when there is nothing to
        show beyond the manifest."""

    def cluster_apply(self) -> list[str] | None:
        """Make the cluster's `groups` exist as written (`runner cluster apply`); what
        changed. None when this executor does not manage groups."""


class ExecutorBase:
    """What an executor plugin subclasses: the defaults of every optional member of
    `Executor`. The required ones (submit, poll, wait, cancel, logs, reclaim, close) it
    writes itself."""

    capabilities: frozenset[str] = frozenset()
    settings_model: ClassVar[type[ExecutorSettings]] = ExecutorSettings
    prefetch: int = 0

    def can_follow(self, *, handle: str) -> bool:
        """By default a handle is never followed after a crash: `reclaim` stops it."""
        return False

    def cluster_status(self) -> str | None:
        """By default there is nothing more to show than the manifest says."""
        return None

    def cluster_apply(self) -> list[str] | None:
        """By default groups are not managed."""
        return None


