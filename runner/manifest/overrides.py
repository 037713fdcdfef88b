"""`--set [JOB/]TASK.PARAM=VALUE`: parameter values given on the command line, parsed and
matched to the one task each names. Problems are Diagnostics at `--set`; whether a task has
the parameter, and what type its value must be, is checked where the task is resolved.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from runner.errors import Diagnostic
from runner.manifest.diagnostics import did_you_mean

__all__ = ["Override", "override_targets", "parse_overrides"]


@dataclass(frozen=True)
class Override:
    """One `--set`: `job` is None when the item names only the task."""

    job: str | None
    task: str
    param: str
    value: str


def parse_overrides(items: Sequence[str]) -> tuple[list[Override], list[Diagnostic]]:
    """`--set [job/]task.param=value` items, and a problem for each malformed one."""
    out: list[Override] = []
    problems = []
    for item in items:
        target, eq, value = item.partition("=")
        job, slash, rest = target.rpartition("/")
        task, dot, param = rest.rpartition(".")
        if not eq or not dot or not task or not param:
            problems.append(
                Diagnostic(
                    f"--set {item!r}: expected TASK.PARAM=VALUE (or JOB/TASK.PARAM=VALUE)",
                    "--set",
                    hint="for example: --set render.frames=1-20",
                )
            )
            continue
        out.append(Override(job if slash else None, task, param, value))
    return out, problems


def override_targets(
    sets: Sequence[Override], tasks_of: Mapping[str, Collection[str]]
) -> tuple[dict[tuple[str, str], dict[str, str]], list[Diagnostic]]:
    """(job, task) -> {param: value} for the overrides that name exactly one task of the
    jobs (`tasks_of`: job -> its task names), and a problem for each that does not."""
    targets: dict[tuple[str, str], dict[str, str]] = {}
    problems: list[Diagnostic] = []
    for o in sets:
        matches = [
            j for j, tasks in tasks_of.items() if (o.job is None or j == o.job) and o.task in tasks
        ]
        if not matches:
            problems.append(
                Diagnostic(
                    f"--set {o.task}.{o.param}: no task {o.task!r} in "
                    + (f"job {o.job!r}" if o.job else "any job"),
                    "--set",
                    hint=did_you_mean(o.task, [t for tasks in tasks_of.values() for t in tasks]),
                )
            )
        elif len(matches) > 1:
            problems.append(
                Diagnostic(
                    f"--set {o.task}.{o.param}: task {o.task!r} is in several jobs "
                    f"({', '.join(matches)})",
                    "--set",
                    hint="write JOB/TASK.PARAM=VALUE",
                )
            )
        else:
            targets.setdefault((matches[0], o.task), {})[o.param] = o.value
    return targets, problems
