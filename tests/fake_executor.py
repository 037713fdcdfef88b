"""A FAKE executor for tests: scriptable attempts that never start a process.

Each attempt is scripted by its launch key (`job/task/index/attempt`, shell-style patterns
allowed): its exit code, how long it runs (real, short asyncio time), whether it hangs until
cancelled, or whether the executor loses it. The fake records what a test wants to assert on:
the order of submits and exits, the environment of every spec, the highest number of attempts
running at once (per cluster), the handles of every poll, and what was cancelled.

Completion is event-driven like the real `local` executor: an attempt's end sets an
`asyncio.Event` that `wait()` returns on, so tests take as long as their scripted durations.
Never use this outside tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.contracts import Cluster, ExecutorBase, LaunchSpec, Status
from runner.engine import Engine, Outcome
from runner.events import Event
from runner.manifest.loader import load
from runner.plan import JobPlan, make_plan
from runner.runs import start_run
from runner.state import State

__all__ = ["Backend", "FakeExecutor", "Harness", "ListReporter", "Script"]

CANCEL_EXIT = 128 + 15  # what a process killed by SIGTERM reports
HANG_LIMIT = 10.0  # an engine run in a test that takes longer than this is hung: fail it


@dataclass(frozen=True)
class Script:
    """How one attempt behaves."""

    exit_code: int = 0
    duration: float = 0.0  # seconds of (real, asyncio) time before it exits
    hang: bool = False  # runs until cancelled
    lost: bool = False  # after `duration` the executor reports it lost, not exited
    cancel_delay: float = 0.0  # how long a cancelled attempt takes to die
    ends_with: str | None = None  # ends in the same instant as the attempt with this key
    submit_error: str | None = None  # submit raises RuntimeError(this), like a failing qsub
    on_submit: Callable[[LaunchSpec], None] | None = None  # a hook, e.g. to cancel the engine


@dataclass
class _Attempt:
    spec: LaunchSpec
    cluster: str
    script: Script
    status: Status = field(default_factory=lambda: Status("running"))
    timer: asyncio.TimerHandle | None = None


class Backend:
    """Scripts and records shared by the fake executors of every cluster of one engine run."""

    def __init__(self, default: Script | None = None) -> None:
        self.default = default or Script()
        self._scripts: list[tuple[str, Script]] = []
        self.executors: dict[str, FakeExecutor] = {}
        # ("submit" | "refused" | "exit" | "cancel", key), in order
        self.log: list[tuple[str, str]] = []
        self.specs: dict[str, LaunchSpec] = {}  # key -> the spec submitted
        self.cluster_of: dict[str, str] = {}  # key -> cluster name
        self.submit_times: dict[str, float] = {}  # key -> loop time of submit
        self.exit_codes: dict[str, int | None] = {}
        self.cancelled: list[str] = []  # keys the engine asked to cancel
        self.running: dict[str, int] = {}  # cluster -> attempts running now
        self.max_running: dict[str, int] = {}  # cluster -> highest ever
        self.polls: list[tuple[str, int]] = []  # (cluster, number of handles) per poll
        self.closed: list[str] = []  # clusters whose executor was closed
        self.left_running_at_close: list[str] = []  # keys still running at close()

    def script(self, pattern: str, **behaviour: object) -> None:
        """Attempts whose key matches `pattern` behave so; later scripts win."""
        self._scripts.append((pattern, Script(**behaviour)))  # type: ignore[arg-type]

    def script_for(self, key: str) -> Script:
        """The behaviour of the attempt `key`."""
        for pattern, s in reversed(self._scripts):
            if fnmatch.fnmatchcase(key, pattern):
                return s
        return self.default

    def factory(self, cluster: Cluster) -> FakeExecutor:
        """What the engine's `executor_factory` calls, once per cluster."""
        ex = FakeExecutor(backend=self, cluster=cluster)
        self.executors[cluster.name] = ex
        return ex

    # -- what tests read --------------------------------------------------------------------

    @property
    def submitted(self) -> list[str]:
        """Keys in submit order."""
        return [k for what, k in self.log if what == "submit"]

    def keys(self, task: str) -> list[str]:
        """Submitted keys of one task, in submit order."""
        return [k for k in self.submitted if k.split("/")[1] == task]

    def position(self, what: str, key: str) -> int:
        """Where ("submit" | "exit", key) happened in the log."""
        return self.log.index((what, key))


class FakeExecutor(ExecutorBase):
    """A FAKE executor: attempts are timers, not processes."""

    capabilities = frozenset({"event-driven"})

    def __init__(self, *, backend: Backend, cluster: Cluster) -> None:
        self._b = backend
        self._cluster = cluster.name
        self._attempts: dict[str, _Attempt] = {}
        self._reported: set[str] = set()  # handles whose end poll() has told
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)

    def _end(self, handle: str, status: Status) -> None:
        a = self._attempts[handle]
        if a.status.state != "running":
            return
        if a.timer is not None:
            a.timer.cancel()
            a.timer = None
        a.status = status
        b = self._b
        b.running[self._cluster] -= 1
        b.log.append(("exit", a.spec.key))
        b.exit_codes[a.spec.key] = status.exit_code
        self._changed.set()
        for h, other in self._attempts.items():
            if other.status.state == "running" and other.script.ends_with == a.spec.key:
                self._end(h, Status("exited", other.script.exit_code))

    async def submit(self, *, spec: LaunchSpec) -> str:
        """Start a scripted attempt."""
        b = self._b
        if spec.key in b.specs:
            raise AssertionError(f"the engine submitted {spec.key} twice")
        loop = asyncio.get_running_loop()
        script = b.script_for(spec.key)
        if script.submit_error is not None:
            b.log.append(("refused", spec.key))
            raise RuntimeError(script.submit_error)
        handle = f"fake-{self._cluster}-{next(self._ids)}"
        a = _Attempt(spec, self._cluster, script)
        self._attempts[handle] = a
        b.log.append(("submit", spec.key))
        b.specs[spec.key] = spec
        b.cluster_of[spec.key] = self._cluster
        b.submit_times[spec.key] = loop.time()
        n = b.running[self._cluster] = b.running.get(self._cluster, 0) + 1
        b.max_running[self._cluster] = max(b.max_running.get(self._cluster, 0), n)
        if not script.hang:
            end = (
                Status("lost", message="fake: lost")
                if script.lost
                else Status("exited", script.exit_code)
            )
            a.timer = loop.call_later(script.duration, self._end, handle, end)
        if script.on_submit is not None:
            script.on_submit(spec)
        return handle

    async def poll(self, *, handles: Sequence[str]) -> dict[str, Status]:
        """Every handle's status at once. An engine that polls an attempt again after being
        told it ended has lost track of it: that fails the test."""
        self._b.polls.append((self._cluster, len(handles)))
        out: dict[str, Status] = {}
        for h in handles:
            if h in self._reported:
                raise AssertionError(f"the engine polled {h} again after it ended")
            a = self._attempts.get(h)
            if a is None:
                raise AssertionError(f"the engine polled {h}, which this executor never gave")
            out[h] = a.status
            if a.status.state != "running":
                self._reported.add(h)
        return out

    async def wait(self, *, timeout: float) -> None:
        """Return when an attempt ended, or after `timeout`."""
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()

    async def cancel(self, *, handles: Sequence[str]) -> None:
        """Scripted attempts die (exit 143) after their `cancel_delay`."""
        loop = asyncio.get_running_loop()
        for h in handles:
            a = self._attempts.get(h)
            if a is None or a.status.state != "running":
                continue
            self._b.cancelled.append(a.spec.key)
            self._b.log.append(("cancel", a.spec.key))
            if a.timer is not None:
                a.timer.cancel()
            a.timer = loop.call_later(
                a.script.cancel_delay, self._end, h, Status("exited", CANCEL_EXIT)
            )

    def logs(self, *, handle: str) -> tuple[Path, Path] | None:
        """The log paths the engine chose."""
        a = self._attempts.get(handle)
        return (a.spec.stdout, a.spec.stderr) if a else None

    def reclaim(self, *, handle: str) -> bool:
        """Nothing outlives a fake."""
        return False

    async def close(self) -> None:
        """Record anything the engine left running."""
        self._b.closed.append(self._cluster)
        for a in self._attempts.values():
            if a.status.state == "running":
                self._b.left_running_at_close.append(a.spec.key)
                if a.timer is not None:
                    a.timer.cancel()


# -- driving the real engine with the fake ---------------------------------------------------


class ListReporter:
    """Collects every event the engine emits."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        """Keep the event."""
        self.events.append(event)

    def close(self) -> None:
        """Nothing to flush."""

    def of(self, kind: str) -> list[Event]:
        """Events of one kind (`started`, `retrying`, `task-upstream_failed`, ...)."""
        return [e for e in self.events if e.event == kind]


class Harness:
    """Plan and apply manifests the way `runner apply` does, with a FAKE executor."""

    def __init__(self, paths: Sequence[Path], state_dir: Path) -> None:
        self.paths = [str(p) for p in paths]
        self.state_dir = state_dir
        self.backend = Backend()
        self.reporter = ListReporter()
        self.engine: Engine | None = None  # set while `apply` runs, for hooks that cancel it
        self.run_ids: dict[str, int] = {}

    def plan(self, *, force: bool = False, rerun: Collection[str] = ()) -> list[JobPlan]:
        """What apply would do now."""
        state = State(self.state_dir)
        try:
            return make_plan(load(self.paths), state, force=force, rerun=rerun)
        finally:
            state.close()

    def apply(
        self,
        *,
        fail_fast: bool = False,
        force: bool = False,
        rerun: Collection[str] = (),
        backend: Backend | None = None,
        limit: float = HANG_LIMIT,
    ) -> Outcome:
        """Plan, record the plan, run the engine, record the end; a fresh backend each time
        unless one is given. After `limit` seconds the run is abandoned mid-way, as if the
        runner had died, and TimeoutError raised."""
        self.backend = backend or Backend()
        self.reporter = ListReporter()
        state = State(self.state_dir)
        try:
            plans = make_plan(load(self.paths), state, force=force, rerun=rerun)
            work = [jp for jp in plans if jp.to_run]
            self.run_ids = {}
            for jp in work:
                rid = start_run(state, jp, digest="test", files=[], git_commit=None)
                self.run_ids[jp.job.name] = rid
            self.engine = Engine(
                state=state,
                plans=work,
                run_ids=self.run_ids,
                reporter=self.reporter,
                fail_fast=fail_fast,
                executor_factory=self.backend.factory,
            )
            outcome = asyncio.run(asyncio.wait_for(self.engine.run(), limit))
            for job, rid in self.run_ids.items():
                state.finish_run(rid, outcome.states[job])
            return outcome
        finally:
            self.engine = None
            state.close()

    def state(self) -> State:
        """A fresh connection to the state store (close it)."""
        return State(self.state_dir)
