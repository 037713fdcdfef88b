"""The scheduling loop: ready instances -> submit -> wait -> poll -> verify -> record.

The engine owns the lifecycle every executor gets for free: dependencies, slots, retries with
exponential backoff, timeouts (which kill the attempt's whole process group), cancellation and
fail-fast. Every per-instance step is O(1): ready queues, counters per task and heaps of timers;
a scheduling round looks only at the attempts currently running.

Moving data (staging inputs, uploading outputs, shipping logs) is `runner.transfers`, and
running an attempt in an image is `runner.containers`: the engine starts them as background
work, which the loop waits for before it ends, and decides what their outcome means.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import containers, plugins, transfers
from runner.contracts import Executor, LaunchSpec
from runner.events import Event, Reporter
from runner.model import Cluster
from runner.plan import InstancePlan, JobPlan, TaskPlan, refresh_fingerprints
from runner.state import Adoption, State
from runner.transfers import TransferError

__all__ = ["Engine", "Outcome", "load_executor"]

MAX_BACKOFF = 300.0
IDLE_WAKE = 0.5  # longest sleep when waiting on timers only
STAGING_WAKE = 0.1  # while transfers run: how soon their end is noticed when attempts run
CANCEL_FLAG_CHECK = 1.0  # how often the state store is asked whether `runner cancel` was used


@dataclass
class Outcome:
    """How each job's run ended."""

    states: dict[str, str]  # job -> succeeded | failed | cancelled
    counts: dict[str, int]  # instance state -> number
    # stopped by --fail-fast after a failure, not by a signal or `runner cancel`
    failed_fast: bool = False

    @property
    def exit_code(self) -> int:
        """0 all succeeded, 1 some work failed, 130 cancelled (from outside, not --fail-fast)."""
        if not self.failed_fast and any(s == "cancelled" for s in self.states.values()):
            return 130
        return 0 if all(s == "succeeded" for s in self.states.values()) else 1


@dataclass(frozen=True, slots=True)
class Logs:
    """Where an attempt's stdout and stderr are written on this machine."""

    stdout: Path
    stderr: Path


@dataclass(frozen=True, slots=True)
class _Ended:
    """An attempt a poll saw end: its exit code (None: lost), what the executor said."""

    inst: _Inst
    code: int | None
    message: str | None


@dataclass(frozen=True, slots=True)
class _Unstarted:
    """An instance that ends without an attempt (its task could not be prepared, an upstream
    task failed, the run was cancelled first)."""

    run_id: int
    job: str
    task: str
    index: int
    state: str
    reason: str

    def row(self) -> tuple[int, str, int, str, str | None, str, str | None]:
        """As `State.instances_final` takes it (no fingerprint: it did not succeed)."""
        return (self.run_id, self.task, self.index, self.state, self.reason, self.job, None)


class _Inst:
    __slots__ = (
        "attempt",
        "container",
        "deadline",
        "done",
        "handle",
        "index",
        "logs",
        "plan",
        "queued",
        "reported_start",
        "started",
        "stopped_by",
        "task",
        "waiting",
    )

    def __init__(self, task: _TaskRun, plan: InstancePlan) -> None:
        self.task = task
        self.plan = plan
        self.index = plan.spec.index
        self.attempt = 0
        self.logs = Logs(Path(), Path())
        self.handle: str | None = None
        self.deadline: float | None = None
        self.started = 0.0
        self.reported_start: float | None = None  # when the executor says it began
        self.waiting: str | None = None  # why the executor says it is still queued
        self.queued = False  # submitted, waiting in the executor for a slot
        self.stopped_by: str | None = None  # "timeout" or "cancel" while running
        self.done = False
        # the attempt's container, for an image task
        self.container: containers.Container | None = None


class _TaskRun:
    __slots__ = (
        "blocked",
        "cluster",
        "dependents",
        "failed",
        "job_run",
        "name",
        "plan",
        "remaining",
        "started",
        "to_run",
        "waiting_on",
    )

    def __init__(self, job_run: _JobRun, plan: TaskPlan, cluster: _ClusterRun) -> None:
        self.job_run = job_run
        self.plan = plan
        self.name = plan.task.name
        self.cluster = cluster
        self.to_run = [_Inst(self, p) for p in plan.instances if p.action == "run"]
        self.remaining = len(self.to_run)
        self.waiting_on = 0
        self.dependents: list[_TaskRun] = []
        self.failed = False
        self.blocked = False  # upstream failed or run cancelled: never starts
        self.started = False


class _JobRun:
    __slots__ = ("cancelled", "failed", "name", "plan", "run_id", "tasks")

    def __init__(self, plan: JobPlan, run_id: int) -> None:
        self.plan = plan
        self.name = plan.job.name
        self.run_id = run_id
        self.tasks: dict[str, _TaskRun] = {}
        self.failed = False
        self.cancelled = False


class _ClusterRun:
    __slots__ = ("executor", "executor_name", "limit", "name", "ready", "running", "slots")

    def __init__(self, cluster: Cluster, executor: Executor) -> None:
        self.name = cluster.name
        self.executor_name = cluster.executor
        self.executor = executor
        self.slots = cluster.slots or os.cpu_count() or 1
        # an executor that queues attempts itself is given some ahead of time, so that a
        # freed slot is refilled without waiting for a round of the engine
        self.limit = self.slots + max(0, int(executor.prefetch))
        self.ready: deque[_Inst] = deque()
        self.running: dict[str, _Inst] = {}

    def no_prefetch(self) -> None:
        """--fail-fast: nothing may start after a failure the engine has not seen yet."""
        self.limit = self.slots


class Engine:
    """Runs the instances a plan says to run, recording everything in `state`."""

    def __init__(
        self,
        *,
        state: State,
        plans: list[JobPlan],
        run_ids: dict[str, int],
        reporter: Reporter,
        fail_fast: bool = False,
        executor_factory: Callable[[Cluster], Executor] | None = None,
        adopt: dict[tuple[str, str, int], Adoption] | None = None,
    ) -> None:
        self._state = state
        self._adopt = dict(adopt or {})
        self._logs_dir = str(state.logs_dir)
        self._report = reporter
        self._fail_fast = fail_fast
        self._containers = containers.Containers(state.directory)
        self._factory = executor_factory or load_executor
        self._clusters: dict[str, _ClusterRun] = {}
        self._jobs: list[_JobRun] = []
        self._retry_heap: list[tuple[float, int, _Inst]] = []
        self._deadline_heap: list[tuple[float, int, _Inst]] = []
        self._seq = itertools.count()
        self._cancelling: str | None = None
        self._dropped = False  # waiting work was recorded cancelled (once is enough)
        self._failed_fast = False  # the cancel came from --fail-fast, not from outside
        self._counts: dict[str, int] = {}
        # everything started in the background, referenced until it is done...
        self._background: set[asyncio.Future[Any]] = set()
        # ...and of it, what the loop waits for before it ends: transfers, container removals
        self._pending: set[asyncio.Future[Any]] = set()
        self._releasable: deque[_TaskRun] = deque()
        self._releasing = False
        self._build(plans, run_ids)

    def _build(self, plans: list[JobPlan], run_ids: dict[str, int]) -> None:
        for jp in plans:
            jr = _JobRun(jp, run_ids[jp.job.name])
            self._jobs.append(jr)
            for name, tp in jp.tasks.items():
                c = tp.task.cluster
                cr = self._clusters.get(c.name)
                if cr is None:
                    cr = self._clusters[c.name] = _ClusterRun(c, self._factory(c))
                    if self._fail_fast:
                        cr.no_prefetch()
                jr.tasks[name] = _TaskRun(jr, tp, cr)
            for tr in jr.tasks.values():
                for dep in tr.plan.task.depends_on:
                    tr.waiting_on += 1
                    jr.tasks[dep].dependents.append(tr)

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, awaited: bool = False) -> None:
        """Run `coro` in the background, keeping a reference until it is done; `awaited`:
        the run is not over until it is (stops and cancels are not: the attempts' ends are)."""
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        if awaited:
            self._pending.add(t)
            t.add_done_callback(self._pending.discard)

    # -- public -------------------------------------------------------------------------------

    def cancel(self, why: str = "cancelled") -> None:
        """Stop starting work and stop what runs; safe to call from a signal handler.

        Called again while cancelling (a second Ctrl-C), it asks the executors once more,
        which they take as: stop now, without the grace period."""
        if self._cancelling is None:
            self._cancelling = why
            self._report.emit(Event("cancelling", message=why))
        else:
            self._report.emit(Event("cancelling", message=f"{why} again: stopping now"))
        for cr in self._clusters.values():
            if cr.running:
                for inst in cr.running.values():
                    inst.stopped_by = inst.stopped_by or "cancel"
                self._spawn(self._stop(cr, list(cr.running.values())))

    async def _stop(self, cr: _ClusterRun, insts: list[_Inst]) -> None:
        """Stop these running attempts: their containers first (signalling `podman run`
        while it starts one can leave the container behind), then what the executor runs."""
        # the handles now: while the containers go, an attempt may end and its retry start
        handles = [i.handle for i in insts if i.handle is not None]
        await containers.remove_all([i.container for i in insts if i.container is not None])
        await cr.executor.cancel(handles=handles)

    def cancel_was_requested(self) -> bool:
        """Whether `runner cancel` flagged one of these runs (it also sends SIGTERM)."""
        return self._state.cancel_requested([jr.run_id for jr in self._jobs])

    async def run(self) -> Outcome:
        """Run to completion (or cancellation) and return how each job ended."""
        try:
            await self._loop()
        finally:
            for cr in self._clusters.values():
                await cr.executor.close()
        states = {}
        for jr in self._jobs:
            if jr.failed:
                states[jr.name] = "failed"
            elif jr.cancelled:
                states[jr.name] = "cancelled"
            else:
                states[jr.name] = "succeeded"
        return Outcome(states, dict(self._counts), self._failed_fast)

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        try:
            await self._rounds()
        finally:
            self._state.flush()

    async def _rounds(self) -> None:
        clusters = list(self._clusters.values())
        run_ids = [jr.run_id for jr in self._jobs]
        next_flag_check = time.monotonic() + CANCEL_FLAG_CHECK
        self._state.hold()
        # roots are collected first: activating a skipped root releases its dependents,
        # which must not be activated a second time by this loop
        roots = [tr for jr in self._jobs for tr in jr.tasks.values() if tr.waiting_on == 0]
        for tr in roots:
            self._activate(tr)
        while True:
            # one transaction per round (outcomes seen after a wake-up, then the launches they
            # allow): one commit each, and everything seen is durable before the next sleep
            if self._cancelling:
                if not self._dropped:
                    self._drop_waiting()
            else:
                for cr in clusters:
                    while cr.ready and len(cr.running) < cr.limit and not self._cancelling:
                        await self._launch(cr, cr.ready.popleft())
            busy = [cr for cr in clusters if cr.running]
            if (
                not busy
                and not self._retry_heap
                and not self._pending
                and not any(cr.ready for cr in clusters)
            ):
                return
            now = time.monotonic()
            timeout = STAGING_WAKE if self._pending else IDLE_WAKE
            if self._retry_heap:
                timeout = min(timeout, self._retry_heap[0][0] - now)
            if self._deadline_heap:
                timeout = min(timeout, self._deadline_heap[0][0] - now)
            timeout = max(timeout, 0.0)
            if now >= next_flag_check:
                next_flag_check = now + CANCEL_FLAG_CHECK
                if not self._cancelling and self._state.cancel_requested(run_ids):
                    self.cancel("cancelled by `runner cancel`")
                    self._state.hold()
                    continue
            self._state.flush()
            if len(busy) == 1:
                await busy[0].executor.wait(timeout=timeout)
            elif busy:
                waits = [asyncio.ensure_future(cr.executor.wait(timeout=timeout)) for cr in busy]
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in pending:
                    w.cancel()
            elif self._pending:
                # only background work: its end (or a timer) is what the loop waits for
                await asyncio.wait(self._pending, timeout=timeout)
            elif timeout > 0:
                await asyncio.sleep(timeout)
            self._state.hold()
            ended: list[_Ended] = []
            for cr in busy:
                statuses = await cr.executor.poll(handles=list(cr.running))
                for handle, st in statuses.items():
                    if st.state == "queued":
                        inst = cr.running[handle]
                        if st.message and st.message != inst.waiting:
                            inst.waiting = st.message  # shown by `runner status`
                            tr = inst.task
                            self._state.attempt_note(
                                tr.job_run.run_id, tr.name, inst.index, inst.attempt, st.message
                            )
                        continue
                    if st.started_at is not None:
                        cr.running[handle].reported_start = st.started_at
                    if st.state == "running" and cr.running[handle].queued:
                        self._started(cr.running[handle])
                    elif st.state in ("exited", "lost"):
                        inst = cr.running.pop(handle)
                        code = st.exit_code if st.state == "exited" else None
                        ended.append(_Ended(inst, code, st.message))
            # every exit seen in this round leaves `running` before any is handled: a failure
            # that triggers --fail-fast must not cancel (and record as cancelled) an attempt
            # whose success was seen in the same poll
            if ended and not self._fail_fast and not self._cancelling:
                # the freed slots are filled before the ended attempts are recorded: the
                # bookkeeping then overlaps the new processes instead of delaying them
                for cr in busy:
                    while cr.ready and len(cr.running) < cr.limit and not self._cancelling:
                        await self._launch(cr, cr.ready.popleft())
            for e in ended:
                if e.code == 0 and e.inst.task.plan.task.sinks and e.inst.stopped_by is None:
                    # a success counts once its outputs are stored; the slot is free already
                    self._spawn(self._upload_then_finish(e.inst, e.message), awaited=True)
                else:
                    self._finished(e.inst, e.code, e.message)
            self._fire_timers()

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._deadline_heap and self._deadline_heap[0][0] <= now:
            _, _, inst = heapq.heappop(self._deadline_heap)
            if inst.handle is not None and inst.deadline is not None and inst.deadline <= now:
                inst.stopped_by = "timeout"
                inst.deadline = None
                self._spawn(self._stop(inst.task.cluster, [inst]))
        while self._retry_heap and self._retry_heap[0][0] <= now:
            _, _, inst = heapq.heappop(self._retry_heap)
            # a retry goes first: its backoff is over, it must not queue behind new work
            inst.task.cluster.ready.appendleft(inst)

    async def _launch(self, cr: _ClusterRun, inst: _Inst) -> None:
        tr = inst.task
        task = tr.plan.task
        jr = tr.job_run
        inst.attempt += 1
        inst.stopped_by = None
        inst.waiting = inst.reported_start = None
        logs = inst.logs = self._log_paths(inst)
        env = dict(inst.plan.spec.env)
        env["RUNNER_RUN_ID"] = str(jr.run_id)
        env["RUNNER_ATTEMPT"] = str(inst.attempt)
        env["RUNNER_STATE_DIR"] = str(self._state.directory.resolve())
        key = f"{jr.name}/{tr.name}/{inst.index}/{inst.attempt}"
        workdir = inst.plan.spec.workdir or task.workdir
        argv = inst.plan.spec.argv
        inst.container = None
        if task.image is not None:
            boxed = self._containers.box(
                task, run_id=jr.run_id, key=key, argv=argv, env=env, workdir=workdir
            )
            argv, env, inst.container = boxed.argv, boxed.env, boxed.container
        spec = LaunchSpec(
            key=key, argv=argv, env=env, workdir=workdir, stdout=logs.stdout, stderr=logs.stderr
        )
        inst.started = time.time()
        adopted = self._adopt.pop((jr.name, tr.name, inst.index), None)
        if adopted is not None:
            same = adopted.fingerprint == inst.plan.fingerprint
            if same and adopted.executor == cr.executor_name:
                self._follow(cr, inst, adopted)
                return
            # the instance changed since (or moved to another cluster): the old attempt goes
            self._spawn(cr.executor.cancel(handles=[adopted.handle]))
        try:
            if inst.plan.spec.workdir is not None:
                inst.plan.spec.workdir.mkdir(parents=True, exist_ok=True)
            if task.sinks:
                transfers.empty_output_folders(task, inst.index)
            handle = await cr.executor.submit(spec=spec)
        except Exception as e:  # a backend refusing one attempt must not stop the others
            self._record_submitted(inst, cr, "")
            self._finished(inst, None, f"could not submit: {e}", submitted=False)
            return
        inst.handle = handle
        cr.running[handle] = inst
        if self._cancelling:
            # the cancel arrived while we awaited the executor: this attempt goes too
            inst.stopped_by = "cancel"
            self._spawn(self._stop(cr, [inst]))
        # the handle is recorded at once, so that a later runner can reclaim the attempt
        inst.queued = cr.limit > cr.slots
        self._record_submitted(inst, cr, handle, queued=inst.queued)
        if not inst.queued:
            self._began(inst)

    def _record_submitted(
        self, inst: _Inst, cr: _ClusterRun, handle: str, *, queued: bool = False
    ) -> None:
        """The attempt is with its executor (`handle`; "" when it refused it), recorded before
        anything else happens, with the logs it writes."""
        tr = inst.task
        self._state.attempt_started(
            tr.job_run.run_id, tr.name, inst.index, inst.attempt, executor=cr.executor_name,
            handle=handle, stdout=str(inst.logs.stdout), stderr=str(inst.logs.stderr),
            started_at=inst.started, queued=queued,
        )  # fmt: skip

    def unclaimed(self) -> list[Adoption]:
        """Attempts of an interrupted run that this run did not take over (their instance
        did not run again: its task was removed, or failed before it started)."""
        return list(self._adopt.values())

    def _follow(self, cr: _ClusterRun, inst: _Inst, adopted: Adoption) -> None:
        """Take over an attempt an interrupted run left running with the scheduler."""
        tr = inst.task
        jr = tr.job_run
        inst.handle = adopted.handle
        inst.logs = Logs(Path(adopted.stdout), Path(adopted.stderr))
        inst.reported_start = adopted.started_at
        inst.queued = True
        cr.running[adopted.handle] = inst
        self._record_submitted(inst, cr, adopted.handle, queued=True)
        self._report.emit(
            Event(
                "re-attached",
                jr.name,
                tr.name,
                inst.index,
                inst.attempt,
                message=f"following the attempt an interrupted run left ({adopted.handle})",
            )
        )
        if self._cancelling:
            inst.stopped_by = "cancel"
            self._spawn(cr.executor.cancel(handles=[adopted.handle]))

    def _started(self, inst: _Inst) -> None:
        """A queued attempt got its slot: its clock (and timeout) starts now."""
        inst.queued = False
        inst.started = min(inst.reported_start or time.time(), time.time())
        tr = inst.task
        self._state.attempt_began(
            tr.job_run.run_id, tr.name, inst.index, inst.attempt, started_at=inst.started
        )
        self._began(inst)

    def _began(self, inst: _Inst) -> None:
        timeout = inst.task.plan.task.timeout
        if timeout is not None:
            inst.deadline = time.monotonic() + timeout
            heapq.heappush(self._deadline_heap, (inst.deadline, next(self._seq), inst))
        self._emit_started(inst)

    def _emit_started(self, inst: _Inst) -> None:
        tr = inst.task
        self._report.emit(
            Event(
                "started",
                tr.job_run.name,
                tr.name,
                inst.index,
                inst.attempt,
                message=inst.plan.spec.description,
            )
        )

    def _log_paths(self, inst: _Inst) -> Logs:
        """logs/RUN/TASK/INSTANCE.ATTEMPT.{out,err}: one folder per task, not per instance,
        because creating a folder per instance costs about as much as running `true`."""
        tr = inst.task
        base = f"{self._logs_dir}/{tr.job_run.run_id}/{tr.name}/{inst.index}.{inst.attempt}"
        return Logs(Path(f"{base}.out"), Path(f"{base}.err"))

    def _finished(
        self,
        inst: _Inst,
        code: int | None,
        message: str | None,
        *,
        submitted: bool = True,
        problem: str | None = None,
    ) -> None:
        """An attempt ended. `problem`: already checked (outputs uploaded or why not)."""
        tr = inst.task
        task = tr.plan.task
        jr = tr.job_run
        began: float | None = None
        if inst.queued:
            # started and ended since the last look: recorded with its end, one write (a
            # cancelled one may never have started: no "started" line for it)
            inst.queued = False
            began = inst.started = min(inst.reported_start or time.time(), time.time())
            if inst.stopped_by is None:
                self._emit_started(inst)
        inst.handle = None
        inst.deadline = None
        box = inst.container
        if box is not None and (inst.stopped_by is not None or code != 0):
            # stopping `podman run` (we did, or a scheduler did: scancel, qdel, a limit) does
            # not stop its container: it goes now (`--rm` takes care of those that end)
            self._spawn(containers.remove_all([box]), awaited=True)
            inst.container = None
        now = time.time()
        elapsed = now - inst.started
        reason: str | None
        if inst.stopped_by == "timeout":
            state, reason = (
                "timeout",
                f"timed out after {_secs(task.timeout or 0)}; process group killed",
            )
        elif inst.stopped_by == "cancel":
            state, reason = "cancelled", self._cancelling or "cancelled"
        elif not submitted:
            state, reason = "failed", message
        elif code is None:
            state, reason = "lost", message or "the executor lost track of it"
        elif code == 0:
            if problem is None and not task.sinks:
                problem = tr.plan.kind.verify(
                    task=task, instance=inst.plan.spec, stdout=inst.logs.stdout,
                    stderr=inst.logs.stderr,
                )  # fmt: skip
            state, reason = ("succeeded", None) if problem is None else ("failed", problem)
        else:
            state, reason = "failed", f"exit code {code}"
            if message:  # what the executor knows about it (a scheduler stopped it, say)
                reason = f"{reason}; {message}"
            said = containers.runtime_said(box.runtime, code, inst.logs.stderr) if box else None
            if said:  # podman's own failure ("netavark: No such file or directory")
                reason = f"{reason}; {said}"
            why = tr.plan.kind.explain(
                task=task, exit_code=code, stdout=inst.logs.stdout, stderr=inst.logs.stderr
            )
            if why:
                reason = f"{reason}: {why}"

        retry = (
            state in ("failed", "timeout", "lost")
            and inst.attempt <= task.retries
            and not self._cancelling
            and (task.retry_on is None or (code is not None and code in task.retry_on))
        )
        ok = state == "succeeded"
        self._state.attempt_finished(
            jr.run_id,
            tr.name,
            inst.index,
            inst.attempt,
            state=state,
            exit_code=code,
            reason=reason,
            ended_at=now,
            instance_state=None if retry else state,
            began=began,
            job=jr.name,
            fingerprint=inst.plan.fingerprint if ok else None,
            parts=inst.plan.parts if ok else None,
        )
        if task.logs and submitted:
            self._spawn(self._ship_logs(inst, inst.attempt, inst.logs), awaited=True)
        event, message = state, reason
        if retry:
            delay = min(task.retry_backoff * 2 ** (inst.attempt - 1), MAX_BACKOFF)
            heapq.heappush(self._retry_heap, (time.monotonic() + delay, next(self._seq), inst))
            event, message = "retrying", f"{reason}; retry in {_secs(delay)}"
        self._report.emit(
            Event(
                event,
                jr.name,
                tr.name,
                inst.index,
                inst.attempt,
                exit_code=code,
                elapsed=elapsed,
                message=message,
            )
        )
        if retry:
            return
        inst.done = True
        self._counts[state] = self._counts.get(state, 0) + 1
        tr.remaining -= 1
        if state == "cancelled":
            jr.cancelled = True
        elif not ok:
            self._task_failed(tr)
        if tr.remaining == 0:
            self._task_done(tr)

    # -- task bookkeeping ---------------------------------------------------------------------

    def _activate(self, tr: _TaskRun) -> None:
        if tr.blocked or tr.started:
            return
        tr.started = True
        if tr.remaining == 0:
            self._state.task_state(tr.job_run.run_id, tr.name, "skipped")
            self._report.emit(
                Event(
                    "task-skipped",
                    tr.job_run.name,
                    tr.name,
                    message=f"{len(tr.plan.instances)} up to date",
                )
            )
            self._release_dependents(tr)
            return
        task = tr.plan.task
        try:
            os.makedirs(f"{self._logs_dir}/{tr.job_run.run_id}/{tr.name}", exist_ok=True)
            if "$<" not in str(task.workdir):
                task.workdir.mkdir(parents=True, exist_ok=True)
            for path in task.outputs.values():
                if path and "://" not in path:
                    Path(path).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            # a task that cannot start fails like one that ran and failed; the runner goes on
            self._fail_unstarted(tr, f"cannot create {e.filename or 'a folder'}: {e.strerror}")
            return
        if task.sources:
            # remote inputs are fetched in a thread: other tasks' instances keep running
            self._spawn(self._stage_inputs(tr), awaited=True)
            return
        refresh_fingerprints(tr.plan, tr.job_run.plan.tasks)
        self._start_task(tr)

    async def _stage_inputs(self, tr: _TaskRun) -> None:
        jr = tr.job_run

        def progress(message: str) -> None:
            self._report.emit(Event("task-staging", jr.name, tr.name, message=message))

        try:
            seen = await transfers.stage_inputs(tr.plan.task, progress)
        except TransferError as e:
            self._state.hold()
            self._fail_unstarted(tr, str(e))
            return
        self._state.hold()
        # the fingerprint records the versions staging fetched (its listing, not another one)
        refresh_fingerprints(tr.plan, jr.plan.tasks, remote=seen)
        self._start_task(tr)

    async def _upload_then_finish(self, inst: _Inst, message: str | None) -> None:
        tr = inst.task
        task = tr.plan.task
        problem = tr.plan.kind.verify(
            task=task, instance=inst.plan.spec, stdout=inst.logs.stdout, stderr=inst.logs.stderr
        )

        def progress(said: str) -> None:
            self._report.emit(
                Event("uploaded", tr.job_run.name, tr.name, inst.index, inst.attempt, message=said)
            )

        if problem is None:
            try:
                await transfers.upload_outputs(task, inst.index, progress)
            except TransferError as e:
                problem = str(e)
        self._state.hold()
        self._finished(inst, 0, message, problem=problem)

    async def _ship_logs(self, inst: _Inst, attempt: int, logs: Logs) -> None:
        """Copy an ended attempt's stdout and stderr to its task's `logs` location."""
        tr = inst.task
        jr = tr.job_run
        where = transfers.log_location(tr.plan.task, jr.run_id, inst.index, attempt)

        def shipped(stream: str, uri: str) -> None:
            self._state.log_copied(jr.run_id, tr.name, inst.index, attempt, stream, uri)

        try:
            await transfers.ship_logs(
                where, stdout=logs.stdout, stderr=logs.stderr, shipped=shipped
            )
        except TransferError as e:
            self._report.emit(
                Event("logs-not-stored", jr.name, tr.name, inst.index, attempt, message=str(e))
            )

    def _start_task(self, tr: _TaskRun) -> None:
        self._state.task_state(tr.job_run.run_id, tr.name, "running")
        self._report.emit(
            Event(
                "task-started",
                tr.job_run.name,
                tr.name,
                message=f"{tr.remaining} of {len(tr.plan.instances)} instances",
            )
        )
        tr.cluster.ready.extend(tr.to_run)
        if self._cancelling:
            # its inputs arrived after the cancel: the next round drops these too
            self._dropped = False

    def _fail_unstarted(self, tr: _TaskRun, reason: str) -> None:
        """Every instance of `tr` fails without an attempt: its task could not be prepared."""
        jr = tr.job_run
        rows: list[_Unstarted] = []
        for inst in tr.to_run:
            inst.done = True
            rows.append(_Unstarted(jr.run_id, jr.name, tr.name, inst.index, "failed", reason))
            self._report.emit(Event("failed", jr.name, tr.name, inst.index, message=reason))
        self._counts["failed"] = self._counts.get("failed", 0) + len(rows)
        self._state.instances_final([r.row() for r in rows])
        tr.remaining = 0
        self._task_failed(tr)
        self._task_done(tr)

    def _task_done(self, tr: _TaskRun) -> None:
        state = "failed" if tr.failed else ("cancelled" if self._cancelling else "succeeded")
        self._state.task_state(tr.job_run.run_id, tr.name, state)
        self._report.emit(Event(f"task-{state}", tr.job_run.name, tr.name))
        if not tr.failed and not self._cancelling:
            self._release_dependents(tr)

    def _release_dependents(self, tr: _TaskRun) -> None:
        for d in tr.dependents:
            d.waiting_on -= 1
            if d.waiting_on == 0:
                self._releasable.append(d)
        if self._releasing:
            return
        # a worklist, not recursion: a chain of thousands of skipped tasks must not overflow
        self._releasing = True
        try:
            while self._releasable:
                self._activate(self._releasable.popleft())
        finally:
            self._releasing = False

    def _task_failed(self, tr: _TaskRun) -> None:
        jr = tr.job_run
        jr.failed = True
        if tr.failed:
            return
        tr.failed = True
        # everything downstream can never start: say so now, keep unrelated work going
        rows: list[_Unstarted] = []
        stack = list(tr.dependents)
        while stack:
            d = stack.pop()
            if d.blocked:
                continue
            d.blocked = True
            stack.extend(d.dependents)
            reason = f"upstream task {tr.name!r} failed"
            for inst in d.to_run:
                inst.done = True
                rows.append(
                    _Unstarted(jr.run_id, jr.name, d.name, inst.index, "upstream_failed", reason)
                )
            self._counts["upstream_failed"] = self._counts.get("upstream_failed", 0) + len(d.to_run)
            self._state.task_state(jr.run_id, d.name, "upstream_failed", reason)
            self._report.emit(Event("task-upstream_failed", jr.name, d.name, message=reason))
        if rows:
            self._state.instances_final([r.row() for r in rows])
        if self._fail_fast and self._cancelling is None:
            self._failed_fast = True
            self.cancel(f"--fail-fast: task {tr.name!r} failed")

    def _drop_waiting(self) -> None:
        """While cancelling: everything not running is cancelled without starting.

        Called once: while cancelling nothing new becomes ready (no retries, no dependents
        released), so later rounds need not scan the tasks again."""
        self._dropped = True
        rows: list[_Unstarted] = []
        reason = f"not started: {self._cancelling}"
        dropped: list[_Inst] = []
        for cr in self._clusters.values():
            dropped.extend(cr.ready)
            cr.ready.clear()
        dropped.extend(inst for _, _, inst in self._retry_heap)
        self._retry_heap.clear()
        for jr in self._jobs:
            for tr in jr.tasks.values():
                if not tr.started and not tr.blocked:
                    tr.blocked = True
                    dropped.extend(tr.to_run)
                    self._state.task_state(jr.run_id, tr.name, "cancelled", reason)
                    self._report.emit(Event("task-cancelled", jr.name, tr.name, message=reason))
        for inst in dropped:
            if inst.done:
                continue
            inst.done = True
            tr = inst.task
            tr.job_run.cancelled = True
            jr = tr.job_run
            rows.append(_Unstarted(jr.run_id, jr.name, tr.name, inst.index, "cancelled", reason))
            self._counts["cancelled"] = self._counts.get("cancelled", 0) + 1
            tr.remaining -= 1
            if tr.remaining == 0 and tr.started:
                self._task_done(tr)
        if rows:
            self._state.instances_final([r.row() for r in rows])


def _secs(s: float) -> str:
    return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"


def load_executor(cluster: Cluster) -> Executor:
    """The executor plugin a cluster names, constructed for that cluster."""
    factory: Any = plugins.load("executor", cluster.executor)
    executor: Executor = factory(cluster=cluster)
    return executor
