"""What the commands of the CLI share: their options, where the state is when none is named,
and the output a command shows its results on.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from runner.errors import UserError
from runner.events import Output

__all__ = [
    "ClusterOpt",
    "Format",
    "FormatOpt",
    "Jobs",
    "Paths",
    "Sets",
    "StateDir",
    "asked_format",
    "find_state_dir",
    "forget_format",
    "output_for",
]


class Format(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"


Paths = Annotated[list[str], typer.Argument(help="manifest files or directories of *.yaml")]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a parameter: TASK.PARAM=VALUE (repeatable)"),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="state directory (default: .runner/ beside the manifest, or $RUNNER_STATE_DIR)",
    ),
]
_ASKED: ContextVar[Format] = ContextVar("format", default=Format.text)


def _remember(form: Format) -> Format:
    """The format the command was given, kept for `asked_format` as the flags are parsed."""
    _ASKED.set(form)
    return form


def asked_format() -> Format:
    """The --output the command line gave (as parsed: `--set -ojson` is a --set), text until
    it is parsed: a user error is shown in it too."""
    return _ASKED.get()


def forget_format() -> None:
    """Back to text, before a command line is parsed (the CLI may run many in a process)."""
    _ASKED.set(Format.text)


FormatOpt = Annotated[
    Format, typer.Option("--output", "-o", help="text or json", callback=_remember)
]
Jobs = Annotated[
    list[str] | None,
    typer.Option("--job", help="only this job of the manifests (repeatable; default: all)"),
]
ClusterOpt = Annotated[
    str | None,
    typer.Option("--cluster", help="run every task on this Cluster of the manifests instead "
                 "of the one it names"),
]  # fmt: skip


def output_for(form: Format = Format.text) -> Output:
    """Where a command shows its results: stdout, as text or JSON."""
    return Output(form.value)


def find_state_dir(given: Path | None) -> Path:
    """--state-dir, $RUNNER_STATE_DIR, ./.runner, or the one .runner/ found below here."""
    if given is not None:
        return given
    if os.environ.get("RUNNER_STATE_DIR"):
        return Path(os.environ["RUNNER_STATE_DIR"])
    here = Path(".runner")
    if (here / "state.db").exists():
        return here
    found = sorted(
        {
            p.parent
            for pattern in ("*/.runner/state.db", "*/*/.runner/state.db", "*/*/*/.runner/state.db")
            for p in Path.cwd().glob(pattern)
        }
    )
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(str(f.relative_to(Path.cwd())) for f in found)
        raise UserError(
            f"several state directories below here ({listed}); choose one with --state-dir"
        )
    return here
