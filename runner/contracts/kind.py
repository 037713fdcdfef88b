"""The kind contract: a kind turns a task into instances (the command line of each, its
environment, what else decides whether it is up to date) and checks an instance's result.

A kind plugin subclasses `KindBase` (which gives every optional member its default) and
registers the class under the entry point group `runner.kinds`; it is constructed without
arguments, once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from runner.manifest.template import render
from runner.model import Task

__all__ = ["InstanceSpec", "Kind", "KindBase", "Problem", "command_argv"]

# what a kind's `check` reports: (the parameter it is about, or None for the task; the
# message; a hint or None)
Problem = tuple[str | None, str, str | None]


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
        in `check`)."""

    @property
    def placeholders(self) -> frozenset[str]:
        """`$<name>`s this kind fills in for commands besides the task's own values
        (blender's `$<frames>`, `$<frame_start>`, ...)."""

    @property
    def runs_in_image(self) -> bool:
        """Whether a task of this kind may run in an OCI image (`image:`); wdl's may not (its
        calls choose their own images)."""

    def check(
        self, *, task: Task, upstream_outputs: Mapping[Path, str]
    ) -> list[Problem]:
        """Problems `runner validate` reports for `task`, each at the parameter it names.
        `upstream_outputs`: the local output folders of the tasks this one depends on
        (folder -> task): what is below them may not exist before those tasks run."""

    def expand(self, *, task: Task) -> list[InstanceSpec]:
        """One spec per instance, in index order."""

    def verify(
        self, *, task: Task, instance: InstanceSpec, stdout: Path, stderr: Path
    ) -> str | None:
        """After exit code 0: None if the result is good, else why it is not.

        A stream the attempt wrote nothing to may have no file at all."""

    def explain(
        self, *, task: Task, exit_code: int, stdout: Path, stderr: Path
    ) -> str | None:
        """After a non-zero exit: the line of the logs that says why (it joins the instance's
        reason), or None."""


class KindBase:
    """What a kind plugin subclasses: the defaults of every optional member of `Kind`. The
    required ones (expand, verify) it writes itself."""

    default_command: str | list[str] | None = None
    placeholders: frozenset[str] = frozenset()
    runs_in_image: bool = True

    def check(
        self, *, task: Task, upstream_outputs: Mapping[Path, str]
    ) -> list[Problem]:
        """By default a kind finds nothing to report beyond what the loader checks."""
        return []

    def explain(
        self, *, task: Task, exit_code: int, stdout: Path, stderr: Path
    ) -> str | None:
        """By default the exit code says it all."""
        return None


def command_argv(command: str | list[str], values: dict[str, str]) -> list[str]:
    """A string command through /bin/sh with quoted values; a list with no shell at all."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", render(command, values, quote=True)]
    return [render(part, values, quote=False) for part in command]
