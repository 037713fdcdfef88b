"""The reporter: everything runner tells people and machines, and the one place where it is
made into text or JSON.

The engine emits `Event`s while a run goes; a reporter renders them: one plain line per event
(logs, pipes), one JSON object per line (`--output json`), or a live progress display (rich, on
a terminal only, so that rich is never imported on other paths). Everything else, the API's
typed values (`runner.api.results`: runs, a plan, what apply did, ...), goes through
`Output.show`, which looks up the value's text and JSON forms at the end of this module.
Commands never format a result themselves.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from runner.api.results import (
        AppList,
        Cancellation,
        ClusterChanges,
        ClusterHeading,
        ClusterReport,
        Copied,
        Finished,
        LogHeading,
        Note,
        NothingToDo,
        ObjectList,
        Plan,
        Planned,
        PluginList,
        RecordNotStored,
        Run,
        RunInterrupted,
        RunList,
        RunStarted,
        RunStatus,
        Validated,
    )
    from runner.plan import JobPlan

__all__ = [
    "Event",
    "JsonReporter",
    "Output",
    "PlainReporter",
    "Reporter",
    "RichReporter",
    "took",
    "when",
]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2x, twice per instance
class Event:
    """Something that happened to a run, task or instance."""

    event: str
    job: str | None = None
    task: str | None = None
    instance: int | None = None
    attempt: int | None = None
    exit_code: int | None = None
    elapsed: float | None = None
    message: str | None = None


class Reporter(Protocol):
    """Receives events."""

    def emit(self, event: Event) -> None:
        """Show or record one event."""

    def close(self) -> None:
        """The run is over."""


class PlainReporter:
    """One line per event: `HH:MM:SS job/task[0] #1 succeeded (0.1s)`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stdout
        self._second = -1
        self._stamp = ""

    def emit(self, event: Event) -> None:
        """Write the event as a line."""
        where = event.job or ""
        if event.task is not None:
            where += f"/{event.task}"
        if event.instance is not None:
            where += f"[{event.instance}]"
        if event.attempt is not None and (event.attempt > 1 or event.event == "retrying"):
            where += f" #{event.attempt}"
        text = event.event.replace("_", " ")
        if event.elapsed is not None:
            text += f" ({event.elapsed:.1f}s)"
        if event.message:
            text += f": {event.message}"
        now = int(time.time())
        if now != self._second:  # one strftime per second, not per event
            self._second, self._stamp = now, time.strftime("%H:%M:%S", time.localtime(now))
        self._out.write(f"{self._stamp} {where} {text}\n".replace("  ", " "))

    def close(self) -> None:
        """Flush."""
        self._out.flush()


class JsonReporter:
    """One JSON object per line, for machines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stdout

    def emit(self, event: Event) -> None:
        """Write the event as JSON."""
        data: dict[str, Any] = {k: v for k, v in asdict(event).items() if v is not None}
        data["time"] = round(time.time(), 3)
        self._out.write(json.dumps(data) + "\n")

    def close(self) -> None:
        """Flush."""
        self._out.flush()


class RichReporter:
    """A live progress bar per task on a terminal; failures printed as they happen."""

    def __init__(self, totals: dict[tuple[str, str], int]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = Console()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._ids = {
            key: self._progress.add_task(f"{key[0]}/{key[1]}", total=n, status="waiting")
            for key, n in totals.items()
        }
        self._progress.start()

    def emit(self, event: Event) -> None:
        """Advance bars; print failures and retries above them."""
        key = (event.job or "", event.task or "")
        tid = self._ids.get(key)
        e = event.event
        if tid is not None:
            if e in ("succeeded", "failed", "timeout", "cancelled", "lost"):
                self._progress.advance(tid)
            if e.startswith("task-"):
                self._progress.update(tid, status=e.removeprefix("task-").replace("_", " "))
            elif e == "started":
                self._progress.update(tid, status="running")
        if e in ("failed", "timeout", "lost", "retrying", "cancelling") or e.endswith(
            "upstream_failed"
        ):
            from rich.text import Text

            where = "/".join(p for p in (event.job, event.task) if p)
            if event.instance is not None:
                where += f"[{event.instance}]"
            line = Text(f"{where} " if where else "")
            # Text, not markup: names like "render[0]" must not be read as style tags
            line.append(e.replace("_", " "), style="yellow" if e == "retrying" else "red")
            if event.message:
                line.append(f": {event.message}")
            self._console.print(line, highlight=False)

    def close(self) -> None:
        """Stop the live display."""
        self._progress.stop()


class Output:
    """Where a command's results and a run's events go, as text (default) or as JSON
    (`--output json`): on `stream`, else on whatever sys.stdout is when it is written to."""

    def __init__(self, form: str = "text", stream: TextIO | None = None) -> None:
        self.form = form
        self._stream = stream

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def show(self, value: object) -> None:
        """A value of `runner.api.results`, in this output's form."""
        text, as_json = _forms()[type(value)]
        self._out.write((as_json if self.form == "json" and as_json else text)(value))

    def raw(self, data: bytes) -> None:
        """Bytes as they are (a log, an object), after what was shown before them."""
        out = self._out
        buffer = getattr(out, "buffer", None)  # a text stream may have no byte layer
        if buffer is not None:
            out.flush()
            buffer.write(data)
            buffer.flush()
        else:
            out.write(data.decode(errors="replace"))

    def flush(self) -> None:
        """Everything shown so far, out now."""
        self._out.flush()

    def events(self, totals: dict[tuple[str, str], int]) -> Reporter:
        """The engine's reporter for a run of `totals` instances per (job, task): JSON lines
        for JSON, live bars on a terminal, plain lines otherwise."""
        if self.form == "json":
            return JsonReporter(self._stream)
        if self._out.isatty():
            return RichReporter(totals)
        return PlainReporter(self._stream)


def when(ts: float | None) -> str:
    """A moment as people read it (local time), or '-'."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def took(start: float | None, end: float | None) -> str:
    """How long from `start` to `end` (to now while it goes on), or '-'."""
    return "-" if start is None else f"{(end or time.time()) - start:.1f}s"


# -- the text and JSON of each result ---------------------------------------------------------
# A form returns what is written, final newline included. A value without a JSON form (what
# only commands without --output show) is shown as text either way.

_Form = tuple[Callable[[Any], str], Callable[[Any], str] | None]


@cache
def _forms() -> dict[type, _Form]:
    from runner.api import results as r  # here: the API imports this module's Output

    return {
        r.RunInterrupted: (_interrupted_text, _interrupted_json),
        r.RecordNotStored: (_not_stored, None),  # a plain line in JSON output too, as always
        r.Planned: (_planned_text, _planned_json),
        r.NothingToDo: (_nothing_text, _nothing_json),
        r.RunStarted: (_started_text, _started_json),
        r.Finished: (_finished_text, _finished_json),
        r.Validated: (_validated_text, _validated_json),
        r.Plan: (_plan_text, _plan_json),
        r.RunList: (_runs_text, _runs_json),
        r.RunStatus: (_status_text, _status_json),
        r.LogHeading: (_log_heading, None),
        r.Cancellation: (_cancellation, None),
        r.PluginList: (_plugins_text, _plugins_json),
        r.AppList: (_apps_text, _apps_json),
        r.ClusterHeading: (_cluster_heading, None),
        r.ClusterReport: (_cluster_report, None),
        r.ClusterChanges: (_cluster_changes, None),
        r.ObjectList: (_objects_text, _objects_json),
        r.Copied: (_copied, None),
        r.Note: (_note, None),
    }


def _line(data: Any) -> str:
    return json.dumps(data) + "\n"


def _document(data: Any) -> str:
    return json.dumps(data, indent=1) + "\n"


# apply, as it goes


def _interrupted_text(v: RunInterrupted) -> str:
    followed = (
        f", {v.followed} attempt(s) still with the cluster's scheduler will be followed, not "
        "submitted again"
        if v.followed
        else ""
    )
    return (
        f"run {v.run} of job {v.job} was interrupted (its runner died); {v.killed} leftover "
        f"process group(s) killed{followed}\n"
    )


def _interrupted_json(v: RunInterrupted) -> str:
    return _line(
        {"event": "run-interrupted", "run": v.run, "job": v.job, "killed": v.killed,
         "followed": v.followed}
    )  # fmt: skip


def _not_stored(v: RecordNotStored) -> str:
    return f"warning: {v.message}\n"


def _planned_text(v: Planned) -> str:
    return _jobs_text(v.jobs, per_instance=False)


def _planned_json(v: Planned) -> str:
    return _line({"event": "plan", **_jobs_json(v.jobs)})


def _nothing_text(v: NothingToDo) -> str:
    return f"Nothing to do: all {v.instances} instances are up to date.\n"


def _nothing_json(v: NothingToDo) -> str:
    return _line({"event": "nothing-to-do", "instances": v.instances})


def _started_text(v: RunStarted) -> str:
    return f"run {v.run}: job {v.job}, {v.to_run} instance(s) to run\n"


def _started_json(v: RunStarted) -> str:
    return _line({"event": "run-started", "run": v.run, "job": v.job, "to_run": v.to_run})


def _finished_text(v: Finished) -> str:
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(v.counts.items()))
    out = []
    for job, rid in v.runs.items():
        out.append(f"run {rid}: job {job} {v.states[job]} ({counts})\n")
        if v.states[job] != "succeeded":
            out.append(f"  see `runner status {rid}` and `runner logs {rid} TASK/INDEX`\n")
    return "".join(out)


def _finished_json(v: Finished) -> str:
    return _line(
        {"event": "done", "runs": dict(v.runs), "states": dict(v.states),
         "counts": dict(v.counts)}
    )  # fmt: skip


# plans


def _jobs_text(jobs: tuple[JobPlan, ...], *, per_instance: bool) -> str:
    """Per job and task: how much runs and why; per instance when asked."""
    out = []
    for jp in jobs:
        out.append(
            f"job {jp.job.name} ({jp.job.file}): {jp.to_run} to run, "
            f"{jp.total - jp.to_run} up to date\n"
        )
        for name, tp in jp.tasks.items():
            n = len(tp.instances)
            out.append(
                f"  {tp.action:4} {name} ({tp.to_run}/{n} instance{'s' if n != 1 else ''})\n"
            )
            if per_instance:
                for i in tp.instances:
                    desc = f" {i.spec.description}" if i.spec.description else ""
                    out.append(f"      {i.action:4} [{i.spec.index}]{desc}: {i.reason}\n")
            else:
                reasons: dict[str, int] = {}
                for i in tp.instances:
                    if i.action == "run":
                        reasons[i.reason] = reasons.get(i.reason, 0) + 1
                for reason, count in reasons.items():
                    out.append(f"      {count} x {reason}\n")
    return "".join(out)


def _jobs_json(jobs: tuple[JobPlan, ...]) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "job": jp.job.name,
                "to_run": jp.to_run,
                "total": jp.total,
                "tasks": [
                    {
                        "task": name,
                        "action": tp.action,
                        "instances": [
                            {
                                "index": i.spec.index,
                                "action": i.action,
                                "reason": i.reason,
                                "fingerprint": i.fingerprint,
                            }
                            for i in tp.instances
                        ],
                    }
                    for name, tp in jp.tasks.items()
                ],
            }
            for jp in jobs
        ]
    }


def _plan_text(v: Plan) -> str:
    return (
        _jobs_text(v.jobs, per_instance=True)
        + f"Plan: {v.to_run} instance(s) to run, {v.total - v.to_run} up to date.\n"
    )


def _plan_json(v: Plan) -> str:
    return _document(_jobs_json(v.jobs))


def _validated_text(v: Validated) -> str:
    return (
        f"ok: {v.files} file(s), {v.documents} document(s), {len(v.jobs)} job(s), "
        f"{v.tasks} task(s)\n"
    )


def _validated_json(v: Validated) -> str:
    return _line({"errors": [], "jobs": list(v.jobs), "tasks": v.tasks})


# runs


def _run_json(r: Run) -> dict[str, Any]:
    """A run as the state records it (its state as shown)."""
    return {
        "id": r.id, "job": r.job, "state": r.state, "reason": r.reason,
        "started_at": r.started_at, "ended_at": r.ended_at, "git_commit": r.git_commit,
        "pid": r.pid, "host": r.host, "manifest_digest": r.manifest_digest,
        "manifest_files": json.dumps(list(r.manifest_files)),
        "cancel_requested": int(r.cancel_requested), "user": r.user,
    }  # fmt: skip


def _runs_text(v: RunList) -> str:
    if not v.runs:
        return "no runs yet\n"
    out = []
    for r in v.runs:
        commit = f" git {r.git_commit[:12]}" if r.git_commit else ""
        commit += f" by {r.user}" if r.user else ""
        out.append(
            f"{r.id:>5}  {r.job:<20} {r.state:<12} {when(r.started_at)}  "
            f"{took(r.started_at, r.ended_at):>8}{commit}\n"
        )
    return "".join(out)


def _runs_json(v: RunList) -> str:
    return _document([_run_json(r) for r in v.runs])


def _status_text(v: RunStatus) -> str:
    r = v.run
    out = [
        f"run {r.id}: job {r.job} {r.state}"
        + (f" ({r.reason})" if r.reason else "")
        + f", started {when(r.started_at)}, {took(r.started_at, r.ended_at)}\n"
    ]
    by_task: dict[str, list[Any]] = {}
    for i in v.instances:
        by_task.setdefault(i.task, []).append(i)
    for t in v.tasks:
        out.append(f"  {t.task:<20} {t.state:<16}" + (f" {t.reason}" if t.reason else "") + "\n")
        for i in by_task.get(t.task, []):
            code = f" exit {i.exit_code}" if i.exit_code is not None else ""
            tries = f" attempts {i.attempts}" if i.attempts else ""
            out.append(
                f"    [{i.idx}] {i.state:<16}{code}{tries}"
                + (f"  {i.reason}" if i.reason else "")
                + "\n"
            )
            for a in v.attempts.get((i.task, i.idx), ()):
                if a.reason and (a.attempt < i.attempts or a.state == "queued"):
                    out.append(f"        attempt {a.attempt} {a.state}: {a.reason}\n")
    return "".join(out)


def _status_json(v: RunStatus) -> str:
    return _document(
        {"run": _run_json(v.run), "tasks": [asdict(t) for t in v.tasks],
         "instances": [asdict(i) for i in v.instances]}
    )  # fmt: skip


def _log_heading(v: LogHeading) -> str:
    s = v.stream
    return f"==> {s.name} of {v.task}/{v.idx} attempt {v.attempt} ({s.path}) <==\n"


def _cancellation(v: Cancellation) -> str:
    if v.outcome == "not-running":
        return f"run {v.run} is not running (it {v.state})\n"
    if v.outcome == "asked":
        return f"asked runner pid {v.pid} to cancel run {v.run}\n"
    return (
        f"run {v.run}'s runner was gone; marked interrupted, {v.killed} process group(s) killed\n"
    )


# what is installed, what manifests name


def _plugins_text(v: PluginList) -> str:
    return "".join(
        f"{p.group:<9} {p.name:<12} {p.distribution} {p.version}  ({p.value})\n" for p in v.plugins
    )


def _plugins_json(v: PluginList) -> str:
    return _document([asdict(p) for p in v.plugins])


def _apps_text(v: AppList) -> str:
    if not v.apps:
        return "no Apps in these manifests\n"
    out = []
    for a in v.apps:
        if a.image is None:
            out.append(f"{a.app:<24} {a.kind:<8} (no image: runs on the host)\n")
        else:
            here = (a.id or "").removeprefix("sha256:")[:12] or "not here (pulled when run)"
            out.append(f"{a.app:<24} {a.kind:<8} {a.image}  tag {a.tag}  id {here}\n")
    return "".join(out)


def _apps_json(v: AppList) -> str:
    return _document([asdict(a) for a in v.apps])


def _cluster_heading(v: ClusterHeading) -> str:
    return f"== cluster {v.name} ({v.executor})\n"


def _cluster_report(v: ClusterReport) -> str:
    return v.status.rstrip() + "\n"


def _cluster_changes(v: ClusterChanges) -> str:
    if v.changes is None:
        return f"cluster {v.name}: no groups to apply\n"
    return "".join(f"cluster {v.name}: {change}\n" for change in v.changes or ["unchanged"])


def _objects_text(v: ObjectList) -> str:
    return "".join(f"{o.size:>12}  {o.etag:<36}  {o.key}\n" for o in v.objects)


def _objects_json(v: ObjectList) -> str:
    return _document([asdict(o) for o in v.objects])


def _copied(v: Copied) -> str:
    return f"{v.count} {v.what}(s) copied to {v.target}\n"


def _note(v: Note) -> str:
    return v.text + "\n"
