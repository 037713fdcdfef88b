"""What executors for batch schedulers (Sun Grid Engine, Slurm) share.

An attempt gets its handle at once: `<batch folder>#<array index>`. Attempts submitted in the
same round of the engine (every instance of a task, say) become one array job, submitted when
the engine next waits. The job script, written into the batch folder, picks the attempt by
its array index, runs it in its working folder with its environment and with stdout and
stderr at the engine's paths, and writes the exit code to `<batch folder>/<index>.exit`
before it ends; the script itself always exits 0 (SGE gives 99 and 100 meanings of its own).
The scheduler's job id is written to `<batch folder>/job-id` as soon as it is known, before
any poll, so a later runner can find the job from the handle alone.

So polling costs the scheduler little:
- an attempt that started or finished is seen by its files, without asking the scheduler;
- one queue query per cycle (the scheduler's whole list, however many jobs) tells queued from
  running, and why a job waits; queries are spaced 1 s apart after a submission or cancel,
  rising to 30 s, and never more than `max_calls_per_minute` (settings) in any minute;
- an attempt gone from the queue without an exit file was killed outside the runner (qdel,
  scancel, a lost node): accounting says how, asked once per job; with no record after
  `lost_after` seconds it is lost. Either way the engine's retry policy decides what next;
- an attempt queued for longer than `stuck_after` seconds (when set) is removed and reported
  lost with the scheduler's reason: a queue whose execution daemon is down answers queries
  while its jobs wait forever.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

from pydantic import Field, ValidationError

from runner.contracts.executor import (
    SECRET_ENV,
    ExecutorBase,
    ExecutorSettings,
    LaunchSpec,
    Status,
    public_env,
)
from runner.errors import UserError
from runner.model import Cluster

__all__ = ["BatchSchedulerExecutor", "QueueEntry", "SchedulerError"]

FILE_CHECK = 0.25  # seconds between looks at exit files while the engine waits


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return int(signal.SIGTERM)


class SchedulerError(Exception):
    """A scheduler command failed; the message has its output."""


class QueueEntry(NamedTuple):
    """One array task as the queue shows it."""

    state: Literal["queued", "running"]
    reason: str | None = None  # why it waits (or what else the scheduler says about it)
    stuck: bool = False  # it will never start by itself (SGE's Eqw): give it up at once


@dataclass
class Batch:
    folder: Path
    name: str
    specs: list[LaunchSpec] = field(default_factory=list)
    job_id: str | None = None
    submitted_at: float = 0.0  # monotonic
    error: str | None = None
    cancel_after_submit: set[int] = field(default_factory=set)


class BatchSettings(ExecutorSettings):
    """A batch scheduler's Cluster `settings:` (each scheduler's executor adds its own)."""

    memory: str | int | None = Field(
        default=None, description="memory per instance, e.g. 4G (SGE: -l h_vmem; Slurm: --mem)"
    )
    walltime: str | int | None = Field(
        default=None, description='run time limit, e.g. "2:00:00" (SGE: -l h_rt; Slurm: -t)'
    )
    native: list[str | int | float] = Field(
        default_factory=list, description="anything else for the submit command, as a list"
    )
    max_calls_per_minute: int = Field(
        default=60, ge=1, description="scheduler commands (submit, queue, accounting, delete) "
        "at most this often",
    )
    stuck_after: float | None = Field(
        default=None, gt=0, description="seconds an attempt may wait in the queue for a reason "
        "that will not pass by itself before it is given up (default: never)",
    )
    lost_after: float = Field(
        default=60.0, gt=0, description="seconds gone from the queue without a record before "
        "an attempt counts as lost",
    )
    array_max: int = Field(
        default=1000, ge=1, description="attempts per array job (Slurm's default MaxArraySize)"
    )
    poll_min: float = Field(
        default=1.0, ge=0, description="seconds between queue queries after a submission"
    )
    poll_max: float = Field(
        default=30.0, ge=0, description="seconds between queue queries when nothing changes"
    )


class BatchSchedulerExecutor(ExecutorBase):
    """The shared part; a scheduler's executor implements the five `_scheduler_*` methods."""

    name = "batch"
    capabilities = frozenset({"arrays", "queue", "reattach"})
    prefetch = 100_000  # the scheduler holds the queue: every ready attempt is handed over
    first_index = 1

    settings_model: ClassVar[type[ExecutorSettings]] = BatchSettings

    def __init__(self, *, cluster: Cluster) -> None:
        try:  # checked by the loader already; this is for executors made by hand
            s = self.settings_model.model_validate(dict(cluster.settings))
        except ValidationError as e:
            raise UserError(f"cluster {cluster.name!r}: settings: {e}") from None
        assert isinstance(s, BatchSettings)
        self.cluster = cluster
        self.settings = s
        self.min_interval = s.poll_min
        self.max_interval = s.poll_max
        self.max_calls = s.max_calls_per_minute
        self.lost_after = s.lost_after
        # attempts per array job: Slurm's default MaxArraySize allows indices up to 1000, and
        # every array task reads the whole job script
        self.array_max = s.array_max
        self.stuck_after = s.stuck_after
        self.calls: collections.Counter[str] = collections.Counter()  # commands run, by name
        self._call_times: collections.deque[float] = collections.deque()
        self._open: dict[str, Batch] = {}  # job/task -> batch still taking attempts
        self._full: list[Batch] = []  # batches that took array_max attempts, not sent yet
        self._batches: dict[str, Batch] = {}  # folder -> batch
        self._flushing: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()  # submissions not finished yet
        self._lock = threading.Lock()  # a batch's job id against cancels arriving meanwhile
        self._seq = 0
        self._snapshot: dict[tuple[str, int], QueueEntry] = {}
        self._snapshot_at = float("-inf")  # monotonic time the last query started
        self._interval = self.min_interval
        self._accounting: dict[str, dict[int, tuple[int | None, str]]] = {}
        self._asked: dict[str, float] = {}  # job id -> when accounting was last asked
        self._missing_since: dict[str, float] = {}
        self._queued_since: dict[str, float] = {}
        self._cancelled: set[str] = set()
        self._gave_up: dict[str, Status] = {}
        self._began_at: dict[str, float] = {}  # handle -> when its job script began
        self._reclaim_view: dict[tuple[str, int], QueueEntry] | None = None

    # -- what a scheduler implements ---------------------------------------------------------

    def _scheduler_submit(self, script: Path, batch: Batch, count: int) -> str:
        """Submit `script` as an array job of `count` tasks; return the job id."""
        raise NotImplementedError

    def _scheduler_queue(self) -> dict[tuple[str, int], QueueEntry]:
        """Every array task in the queue: (job id, index) -> entry. One command."""
        raise NotImplementedError

    def _scheduler_accounting(self, job_id: str) -> dict[int, tuple[int | None, str]] | None:
        """How the tasks of a job that left the queue ended: index -> (exit code or None,
        what happened). None when the scheduler has no record (yet)."""
        raise NotImplementedError

    def _scheduler_cancel(self, job_id: str, indices: Sequence[int] | None) -> None:
        """Remove these tasks of a job (all of them for None) from the scheduler."""
        raise NotImplementedError

    def index_variable(self) -> str:
        """The environment variable that holds a task's array index."""
        raise NotImplementedError

    # -- running commands ---------------------------------------------------------------------

    def run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command (counted in `calls`); SchedulerError when it fails."""
        self.calls[argv[0]] += 1
        self._call_times.append(time.monotonic())
        try:
            # `qsub -V` and `sbatch --export=ALL` hand the environment to the scheduler,
            # which keeps it where other users of the cluster may read it (`qstat -j`)
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=120, env=public_env()
            )
        except FileNotFoundError:
            raise UserError(
                f"{argv[0]} not found: the {self.name} executor needs the scheduler's "
                "client commands on PATH"
            ) from None
        except subprocess.TimeoutExpired:
            raise SchedulerError(f"{argv[0]} did not answer within 120 s") from None
        if check and done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise SchedulerError(
                f"{shlex.join(argv[:3])}... failed ({done.returncode}): "
                + ("; ".join(said[-3:]) or "no output")
            )
        return done

    def _budget_left(self) -> bool:
        now = time.monotonic()
        while self._call_times and now - self._call_times[0] > 60:
            self._call_times.popleft()
        return len(self._call_times) < self.max_calls

    # -- the executor contract ----------------------------------------------------------------

    async def submit(self, *, spec: LaunchSpec) -> str:
        group = spec.key.rsplit("/", 2)[0]
        batch = self._open.get(group)
        if batch is None or len(batch.specs) >= self.array_max:
            self._seq += 1
            folder = spec.stdout.parent.resolve() / f".{self.name}-{os.getpid()}-{self._seq}"
            name = "runner-" + "-".join(
                "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
                for part in group.split("/")
            )
            if group in self._open:  # the open batch is full: it goes as it is
                self._full.append(self._open[group])
            batch = self._open[group] = Batch(folder, name[:60])
            self._batches[str(folder)] = batch
        batch.specs.append(spec)
        handle = f"{batch.folder}#{self.first_index + len(batch.specs) - 1}"
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(self._flushing)
            self._flushing.add_done_callback(self._flushes.discard)
        return handle

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # every submit of this round of the engine joins
        batches = self._full + list(self._open.values())
        self._full = []
        self._open.clear()
        self._flushing = None
        for batch in batches:
            await asyncio.to_thread(self._submit_batch, batch)
        self._interval = self.min_interval  # new work: look again soon

    def _submit_batch(self, batch: Batch) -> None:
        try:
            with self._lock:
                if len(batch.cancel_after_submit) == len(batch.specs):
                    batch.error = "cancelled before it was submitted"
                    return
            batch.folder.mkdir(parents=True, exist_ok=True)
            script = batch.folder / "job.sh"
            script.write_text(self._script(batch))
            job_id = self._scheduler_submit(script, batch, len(batch.specs))
            (batch.folder / "job-id").write_text(job_id + "\n")
            with self._lock:
                batch.submitted_at = time.monotonic()
                batch.job_id = job_id
                cancelled = sorted(batch.cancel_after_submit)
            if cancelled:
                self._scheduler_cancel(job_id, cancelled)
        except Exception as e:  # every attempt of the batch must hear how it ended
            said = str(e) if isinstance(e, (SchedulerError, OSError, UserError)) else repr(e)
            batch.error = f"could not submit to {self.name}: {said}"

    def _script(self, batch: Batch) -> str:
        q = shlex.quote
        lines = [
            "#!/bin/bash",
            f"# written by runner: array job {batch.name}; array task i runs attempt i below",
            f'i="${{{self.index_variable()}:-}}"',
            # submitted with the runner's environment, less its storage secrets
            f"unset {' '.join(sorted(SECRET_ENV))}",
            f"d={q(str(batch.folder))}",
            "# a signal to the job is the scheduler stopping it (qdel, scancel, a limit): say so",
            "stopped=",
            *(f"trap 'stopped={sig}' {sig}" for sig in ("TERM", "INT", "USR1", "USR2", "XCPU")),
            'printf "%s\\n" "${EPOCHREALTIME:-}" >"$d/$i.start"',
            'case "$i" in',
        ]
        # what every attempt shares is said once, before the case
        common = set(batch.specs[0].env.items())
        for spec in batch.specs[1:]:
            common &= set(spec.env.items())
        at = lines.index(f"d={q(str(batch.folder))}")  # after the unset: a task may set them
        lines[at:at] = [f"export {q(f'{k}={v}')}" for k, v in sorted(common)]
        for n, spec in enumerate(batch.specs, start=self.first_index):
            own = [(k, v) for k, v in spec.env.items() if (k, v) not in common]
            body = " && ".join(
                [f"cd -- {q(str(spec.workdir))}"]
                + [f"export {q(f'{k}={v}')}" for k, v in own]
                + [f"exec {shlex.join(spec.argv)}"]
            )
            out, err = q(str(spec.stdout)), q(str(spec.stderr))
            lines.append(f"  {n}) ( {body} ) >{out} 2>{err} </dev/null; code=$? ;;")
        lines += [
            '  *) echo "runner: no attempt $i in this job" >&2; code=2 ;;',
            "esac",
            "# killed by a signal: the scheduler's signal to this script may be a moment behind",
            '[ "$code" -gt 128 ] && [ -z "$stopped" ] && sleep 1',
            'printf "%s %s\\n" "$code" "$stopped" >"$d/$i.exit.tmp"',
            'mv -f "$d/$i.exit.tmp" "$d/$i.exit"',
            "exit 0",
            "",
        ]
        return "\n".join(lines)

    def _batch_of(self, handle: str) -> tuple[Batch, int]:
        folder, _, index = handle.rpartition("#")
        batch = self._batches.get(folder)
        if batch is None:  # a handle of an earlier runner: its folder says everything
            batch = Batch(Path(folder), Path(folder).name)
            try:
                batch.job_id = (Path(folder) / "job-id").read_text().strip() or None
            except OSError:
                batch.error = f"no job id in {folder}: the job was never submitted"
            self._batches[folder] = batch
        return batch, int(index)

    def _exit_file(self, batch: Batch, index: int) -> Status | None:
        """The attempt's end, from its exit file (None: not ended, or not seen ending)."""
        try:
            code, _, stopped = (batch.folder / f"{index}.exit").read_text().strip().partition(" ")
            status = Status("exited", int(code))
        except (OSError, ValueError):
            return None
        if stopped:
            # the scheduler stopped the job: never a success, even when the command went on
            # to exit 0 after the signal (a shell that outlived its killed child, say)
            status = Status(
                "exited",
                status.exit_code or 128 + _signal_number(stopped),
                f"the {self.name} scheduler sent SIG{stopped} to the job "
                "(qdel/scancel by someone, a time or CPU limit, or preemption)",
            )
        return status

    @staticmethod
    def _start_file(batch: Batch, index: int) -> float | None:
        """When the job script began (None: not yet), from its start file."""
        try:
            text = (batch.folder / f"{index}.start").read_text().strip()
        except OSError:
            return None
        try:
            return float(text)
        except ValueError:
            return 0.0  # began; bash too old to say when

    def _began(self, h: str, batch: Batch, index: int, names: set[str]) -> float | None:
        """When the attempt began, if it has (its start file is in `names`); read once."""
        if h not in self._began_at and f"{index}.start" in names:
            began = self._start_file(batch, index)
            if began is not None:
                self._began_at[h] = began
        return self._began_at.get(h)

    async def poll(self, *, handles: Sequence[str]) -> dict[str, Status]:
        out: dict[str, Status] = {}
        unsure: list[tuple[str, Batch, int, float | None]] = []
        listings: dict[str, set[str]] = {}  # one directory listing per batch, not two stats
        for h in handles:
            if h in self._gave_up:
                out[h] = self._gave_up[h]
                continue
            batch, index = self._batch_of(h)
            names = listings.get(str(batch.folder))
            if names is None:
                try:
                    names = listings[str(batch.folder)] = set(os.listdir(batch.folder))
                except OSError:
                    names = listings[str(batch.folder)] = set()
            began = self._began(h, batch, index, names)
            ended = self._exit_file(batch, index) if f"{index}.exit" in names else None
            if ended is not None:
                out[h] = replace(ended, started_at=began or None)
                self._began_at.pop(h, None)
            elif batch.error is not None:
                out[h] = Status("lost", message=batch.error)
            elif batch.job_id is None:
                out[h] = Status("queued", message="being submitted")
            else:
                unsure.append((h, batch, index, began))
        if unsure:
            await self._refresh()
        for h, batch, index, began in unsure:
            st = await self._status(h, batch, index, began is not None)
            out[h] = replace(st, started_at=began or None) if began else st
        return out

    async def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._snapshot_at < self._interval:
            return
        if not self._budget_left():
            return
        try:
            snapshot = await asyncio.to_thread(self._scheduler_queue)
        except (SchedulerError, ValueError):
            self._interval = min(self._interval * 2, self.max_interval)
            return  # the scheduler did not answer: keep what we knew, ask later
        self._snapshot, self._snapshot_at = snapshot, now
        # start and exit files tell progress; the queue is asked for what they cannot (why a
        # job waits, a job gone without a word), less often the longer things go smoothly
        self._interval = min(self._interval * 1.5, self.max_interval)

    async def _status(self, h: str, batch: Batch, index: int, started: bool) -> Status:
        """What the queue (and, for a job that left it, accounting) says; `started`: the
        job script has begun (its start file is there), whatever an older listing says."""
        assert batch.job_id is not None
        entry = self._snapshot.get((batch.job_id, index))
        now = time.monotonic()
        if entry is not None:
            self._missing_since.pop(h, None)
            if entry.state == "queued" and not started:
                if entry.stuck:
                    return await self._give_up(h, batch, index, entry.reason or "stuck")
                since = self._queued_since.setdefault(h, now)
                if self.stuck_after is not None and now - since > self.stuck_after:
                    return await self._give_up(
                        h, batch, index,
                        f"stuck in the queue for {now - since:.0f} s ({entry.reason or 'waiting'})",
                    )  # fmt: skip
                return Status("queued", message=entry.reason)
            self._queued_since.pop(h, None)
            return Status("running", message=entry.reason)
        if self._snapshot_at < batch.submitted_at:  # not in a queue listing yet
            return Status("running") if started else Status("queued", message="submitted")
        ended = self._exit_file(batch, index)  # it may have ended since we looked
        if ended is not None:
            return ended
        if h in self._cancelled:
            return Status("exited", 128 + 9, "cancelled")
        record = await self._account(batch.job_id, index)
        since = self._missing_since.setdefault(h, now)
        if record is not None and record[0] != 0:
            code, what = record
            return Status(
                "exited" if code is not None else "lost",
                code,
                f"ended outside the runner ({what})",
            )
        # accounting says the job script ended well (it always exits 0): its exit file says
        # how the command did; a shared file system may show it late, so it is waited for
        if record is not None and now - since > self.lost_after:
            return Status(
                "lost",
                message=f"job {batch.job_id} task {index} ended, but its exit file "
                f"{batch.folder}/{index}.exit never appeared (is {batch.folder} on a file "
                "system the nodes share?)",
            )
        if now - since > self.lost_after:
            return Status(
                "lost",
                message=f"job {batch.job_id} task {index} left the {self.name} queue with no "
                f"exit status and no accounting record for {self.lost_after:.0f} s",
            )
        return Status("running", message="left the queue; waiting for its exit status")

    async def _account(self, job_id: str, index: int) -> tuple[int | None, str] | None:
        """How array task `index` of a job that left the queue ended, if the scheduler has
        a record; asked at most once per polling interval per job (one command for all of
        its tasks), and what it said is kept."""
        known = self._accounting.setdefault(job_id, {})
        if index in known:
            return known[index]
        now = time.monotonic()
        if now - self._asked.get(job_id, float("-inf")) < self._interval:
            return None
        if not self._budget_left():
            return None
        self._asked[job_id] = now
        try:
            found = await asyncio.to_thread(self._scheduler_accounting, job_id)
        except (SchedulerError, ValueError):  # no answer, or one we cannot read: ask later
            return None
        known.update(found or {})
        return known.get(index)

    async def _give_up(self, h: str, batch: Batch, index: int, why: str) -> Status:
        assert batch.job_id is not None
        with contextlib.suppress(SchedulerError):
            await asyncio.to_thread(self._scheduler_cancel, batch.job_id, [index])
        self._gave_up[h] = Status("lost", message=why)
        return self._gave_up[h]

    async def wait(self, *, timeout: float) -> None:
        await asyncio.sleep(max(0.0, min(timeout, FILE_CHECK)))

    async def cancel(self, *, handles: Sequence[str]) -> None:
        by_job: dict[str, list[int]] = {}
        for h in handles:
            self._cancelled.add(h)
            batch, index = self._batch_of(h)
            with self._lock:
                if batch.job_id is None:
                    batch.cancel_after_submit.add(index)
                    continue
            by_job.setdefault(batch.job_id, []).append(index)
        for job_id, indices in by_job.items():
            with contextlib.suppress(SchedulerError):  # gone already: the next poll tells
                await asyncio.to_thread(self._scheduler_cancel, job_id, sorted(indices))
        self._interval = self.min_interval
        self._snapshot_at = float("-inf")  # look at the queue again at the next poll

    def logs(self, *, handle: str) -> tuple[Path, Path] | None:
        batch, index = self._batch_of(handle)
        n = index - self.first_index
        if 0 <= n < len(batch.specs):
            return batch.specs[n].stdout, batch.specs[n].stderr
        return None

    def reclaim(self, *, handle: str) -> bool:
        """Remove an earlier runner's attempt from the scheduler if it is still there."""
        batch, index = self._batch_of(handle)
        if batch.job_id is None or self._exit_file(batch, index) is not None:
            return False
        if self._reclaim_view is None:  # one queue query for all the handles of a clean-up
            try:
                self._reclaim_view = self._scheduler_queue()
            except SchedulerError:
                return False
        if (batch.job_id, index) not in self._reclaim_view:
            return False
        try:
            self._scheduler_cancel(batch.job_id, [index])
        except SchedulerError:
            return False
        return True

    def can_follow(self, *, handle: str) -> bool:
        """Whether a later runner can follow this attempt: its job was submitted."""
        return (Path(handle.rpartition("#")[0]) / "job-id").is_file()

    async def close(self) -> None:
        while self._flushes:
            await asyncio.gather(*list(self._flushes))
