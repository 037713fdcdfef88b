"""What happens during a run, told to people and machines.

The engine emits `Event`s; a reporter renders them: one plain line per event (logs, pipes), one
JSON object per line (`--output json`), or a live progress display (rich, on a terminal only, so
that rich is never imported on other paths).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TextIO

__all__ = ["Event", "JsonReporter", "PlainReporter", "Reporter", "make_reporter"]


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


def make_reporter(output: str, totals: dict[tuple[str, str], int]) -> Reporter:
    """JSON for `--output json`, live bars on a terminal, plain lines otherwise."""
    if output == "json":
        return JsonReporter()
    if sys.stdout.isatty():
        return RichReporter(totals)
    return PlainReporter()
