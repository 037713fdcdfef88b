"""The three plugin contracts: executors run processes, kinds shape tasks, stores move data.

Plugins import only this module (and what it re-exports). Every method takes keyword-only
arguments so the contracts can grow without breaking plugins. The engine owns the lifecycle:
retries, timeouts, signals and polling cadence never live in a plugin.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from runner.model import Cluster, Task
from runner.manifest.template import render

__all__ = [
    "SECRET_ENV",
    "Cluster",
    "Executor",
    "InstanceSpec",
    "Kind",
    "LaunchSpec",
    "Status",
    "Task",
    "command_argv",
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
class InstanceSpec:
    """What one instance of a task runs, as a kind describes it."""

    index: int
    argv: list[str]
    env: dict[str, str]
    description: str | None = None
    workdir: Path | None = None  # when the instance has its own (else the task's)
    # anything else that decides whether a finished instance is still up to date
    fingerprint_extra: dict[str, str] = field(default_factory=dict)


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


@runtime_checkable
class Executor(Protocol):
    """Runs attempts somewhere. Constructed as `factory(cluster=Cluster)`.

    An executor that queues attempts itself may set an int attribute `prefetch`: the engine
    then submits up to that many attempts beyond the cluster's slots. Until one really
    starts, poll() says "queued" for it; its timeout and elapsed time count from the first
    poll that says otherwise.
    """

    capabilities: frozenset[str]

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


@runtime_checkable
class Kind(Protocol):
    """Turns a task into instance specs and checks an instance's result."""

    @property
    def default_command(self) -> str | list[str] | None:
        """The command a task or App of this kind runs when its manifest writes no `command:`
        (blender's is "blender"), or None when the kind has none. A class attribute will do:
        `default_command = "blender"`.

        A default is used exactly as if the manifest had written it (`command: blender` and
        no `command:` give the same task and the same fingerprints), so it follows the rules
        of a written command: a string runs through /bin/sh, a list without a shell, neither
        may be empty. It is a program, not a template: it holds no `$<placeholders>`.

        With None, an App of this kind must write `command:`, and so must a task of the
        `shell` kind; a task of another kind that writes none gets an empty command (a kind
        that builds its own command line, like wdl, never reads it; one that needs it says so
        in `check`). A kind written before this member existed is read as None:
        `runner.manifest.loader.default_command` is the one place that reads it."""

    def expand(self, *, task: Task) -> list[InstanceSpec]:
        """One spec per instance, in index order."""

    def verify(
        self, *, task: Task, instance: InstanceSpec, stdout: Path, stderr: Path
    ) -> str | None:
        """After exit code 0: None if the result is good, else why it is not.

        A stream the attempt wrote nothing to may have no file at all.

        A kind may also define `explain(*, task, exit_code, stdout, stderr) -> str | None`:
        after a non-zero exit, the line of the logs that says why (it joins the reason)."""


def command_argv(command: str | list[str], values: dict[str, str]) -> list[str]:
    """A string command through /bin/sh with quoted values; a list with no shell at all."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", render(command, values, quote=True)]
    return [render(part, values, quote=False) for part in command]
