"""The values the API hands back: what a run, a task, an instance or an attempt is now, what
`apply` did as it went, what a command found. Typed and immutable, so the CLI, the web app
and tests read fields, never rows or dicts.

Values only: nothing here reads state, touches a file or knows how a value is shown (that
is `runner.events`, the one place results become text or JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from runner.contracts import ObjectInfo
    from runner.model import Bundle
    from runner.plan import JobPlan
    from runner.plugins import PluginInfo

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
    "Finished",
    "Instance",
    "LogHeading",
    "LogStream",
    "Note",
    "NothingToDo",
    "ObjectList",
    "Plan",
    "Planned",
    "PluginList",
    "RecordNotStored",
    "Run",
    "RunInterrupted",
    "RunList",
    "RunProgress",
    "RunStarted",
    "RunStatus",
    "TaskState",
    "Validated",
]

# -- what was run -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """A run of a job, its state as a person should read it (a run still marked running
    whose runner is gone is `interrupted`)."""

    id: int
    job: str
    state: str
    reason: str | None
    started_at: float
    ended_at: float | None
    git_commit: str | None
    pid: int | None
    host: str | None
    manifest_digest: str | None
    manifest_files: tuple[str, ...]  # absolute paths, as the run recorded them
    cancel_requested: bool
    user: str | None


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task in a run: its state and why, and how many instances it has."""

    task: str
    state: str
    reason: str | None
    instances: int


@dataclass(frozen=True, slots=True)
class Instance:
    """An instance in a run: its state, exit code, attempts and reason."""

    task: str
    idx: int
    state: str
    reason: str | None
    exit_code: int | None
    attempts: int
    started_at: float | None
    ended_at: float | None
    description: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of an instance: where it ran and its logs."""

    attempt: int
    state: str
    exit_code: int | None
    executor: str | None
    handle: str | None
    started_at: float | None
    ended_at: float | None
    stdout: str  # where the attempt writes its output on the host that runs it
    stderr: str
    reason: str | None


@dataclass(frozen=True)
class RunList:
    """Recent runs, newest first."""

    runs: tuple[Run, ...]


@dataclass(frozen=True)
class RunStatus:
    """A run with its tasks and instances; `attempts` holds the attempts worth a line (of
    instances tried more than once, or still waiting), when they were asked for."""

    run: Run
    tasks: tuple[TaskState, ...]
    instances: tuple[Instance, ...]
    attempts: Mapping[tuple[str, int], tuple[Attempt, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunProgress:
    """What a page following a run polls for: states and counts, no rows."""

    state: str
    done: int  # instances succeeded or skipped
    total: int
    tasks: Mapping[str, str]  # task -> state
    counts: Mapping[str, Mapping[str, int]]  # task -> state -> instances in it
    instances: Mapping[str, str]  # "task/idx" -> state


@dataclass(frozen=True, slots=True)
class Busy:
    """Attempts queued or running now for one task of a live run, on one executor."""

    run: Run
    task: str
    executor: str | None
    running: int
    queued: int


@dataclass(frozen=True)
class LogStream:
    """One stream of an attempt's log: the file it is written to, and the copy its task's
    `logs` keeps (a URI), if any."""

    name: Literal["stdout", "stderr"]
    path: Path
    copy: str | None


@dataclass(frozen=True)
class AttemptLog:
    """An attempt's stdout and stderr (the streams asked for)."""

    task: str
    idx: int
    attempt: int
    streams: tuple[LogStream, ...]


@dataclass(frozen=True)
class LogHeading:
    """The line above one stream when both are shown."""

    stream: LogStream
    task: str
    idx: int
    attempt: int


@dataclass(frozen=True)
class Cancellation:
    """What `cancel` did: nothing (the run was not running), asked its runner to stop, or
    closed the run itself because its runner was gone."""

    run: int
    outcome: Literal["not-running", "asked", "reclaimed"]
    state: str  # the run's state when asked
    pid: int | None = None  # the runner asked
    killed: int = 0  # process groups killed when the runner was gone


# -- what apply does as it goes ---------------------------------------------------------------


@dataclass(frozen=True)
class RunInterrupted:
    """A run whose runner died, closed before the job is applied again."""

    run: int
    job: str
    killed: int  # leftover process groups killed
    followed: int  # attempts still with a cluster's scheduler, followed instead of rerun


@dataclass(frozen=True)
class Planned:
    """The plan apply is about to carry out."""

    jobs: tuple[JobPlan, ...]


@dataclass(frozen=True)
class NothingToDo:
    """Every instance is up to date."""

    instances: int


@dataclass(frozen=True)
class RunStarted:
    """A run of a job began."""

    run: int
    job: str
    to_run: int


@dataclass(frozen=True)
class RecordNotStored:
    """A run record that could not be stored in one of its places (the run goes on)."""

    message: str


@dataclass(frozen=True)
class Finished:
    """How every run of this apply ended."""

    runs: Mapping[str, int]  # job -> run
    states: Mapping[str, str]  # job -> state
    counts: Mapping[str, int]  # instance state -> how many


# -- what other commands found ----------------------------------------------------------------


@dataclass(frozen=True)
class Validated:
    """Manifests that load: how much they hold."""

    files: int
    documents: int
    jobs: tuple[str, ...]  # sorted
    tasks: int

    @classmethod
    def of(cls, bundle: Bundle) -> Validated:
        """The summary of a loaded bundle."""
        return cls(
            files=len(bundle.files),
            documents=bundle.documents,
            jobs=tuple(sorted(bundle.jobs)),
            tasks=sum(len(j.tasks) for j in bundle.jobs.values()),
        )


@dataclass(frozen=True)
class Plan:
    """What `apply` would do, per job, task and instance."""

    bundle: Bundle
    jobs: tuple[JobPlan, ...]

    @property
    def to_run(self) -> int:
        """Instances that would run."""
        return sum(jp.to_run for jp in self.jobs)

    @property
    def total(self) -> int:
        """Every instance."""
        return sum(jp.total for jp in self.jobs)


@dataclass(frozen=True, slots=True)
class AppRevision:
    """An App and its revision: the image, its tag and the image's ID here (if pulled)."""

    app: str
    kind: str
    image: str | None
    tag: str | None
    id: str | None
    description: str | None


@dataclass(frozen=True)
class AppList:
    """The Apps of some manifests."""

    apps: tuple[AppRevision, ...]


@dataclass(frozen=True)
class ClusterHeading:
    """The line above what a cluster's scheduler reports."""

    name: str
    executor: str


@dataclass(frozen=True)
class ClusterReport:
    """Hosts, slots and load of a cluster as its scheduler reports them."""

    name: str
    executor: str
    status: str


@dataclass(frozen=True)
class ClusterChanges:
    """What applying a cluster's groups changed; None when it declares no groups."""

    name: str
    changes: tuple[str, ...] | None


@dataclass(frozen=True)
class ObjectList:
    """Objects found below a prefix (or the one object named)."""

    objects: tuple[ObjectInfo, ...]


@dataclass(frozen=True)
class Copied:
    """How much a copy moved, and where to."""

    count: int
    what: Literal["object", "file"]
    target: str


@dataclass(frozen=True)
class PluginList:
    """The plugins installed."""

    plugins: tuple[PluginInfo, ...]


@dataclass(frozen=True)
class Note:
    """A sentence for people (a file written, where a server listens)."""

    text: str
