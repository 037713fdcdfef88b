"""Which `$<names>` a command, an env value or a working folder may use, and what each means.

A name is declared by a parameter, an input or an output (of the task, or of its App), by
the runner (`BUILTIN_PLACEHOLDERS`) or by the task's kind (blender's `$<frames>`); each name
has one meaning. These are checks only: values are filled in by `runner.manifest.template`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.manifest.diagnostics import Checker, did_you_mean
from runner.manifest.source import Document
from runner.manifest.template import TemplateError, placeholders, shell_contexts

__all__ = ["BUILTIN_PLACEHOLDERS", "check_placeholders", "check_value_names", "used_names"]

BUILTIN_PLACEHOLDERS = ("instance_id", "instance_count", "task", "job")


def check_value_names(
    check: Checker,
    doc: Document,
    base: list[Any],
    params: Iterable[str],
    inputs: Iterable[str],
    outputs: Iterable[str],
) -> None:
    """Each `$<name>` has one meaning: not a built-in, not both a parameter and an input."""
    seen: dict[str, str] = {}
    for section, names in (("params", params), ("inputs", inputs), ("outputs", outputs)):
        for n in names:
            if n in BUILTIN_PLACEHOLDERS:
                check.at(
                    doc,
                    [*base, section, n],
                    f"{n!r} is a built-in placeholder: $<{n}> is set by the runner",
                    "choose another name",
                    key=True,
                )
            elif n in seen:
                check.at(
                    doc,
                    [*base, section, n],
                    f"{n!r} is already declared in {seen[n]}: $<{n}> would be ambiguous",
                    "choose another name",
                    key=True,
                )
            seen.setdefault(n, section)


def check_placeholders(
    check: Checker,
    doc: Document,
    path: list[Any],
    command: str | list[str],
    declared: set[str],
    owner: str,
) -> None:
    """Every `$<name>` in `command` (a string run by the shell, or argv) is well formed and
    declared; `owner` says whose declarations count, in the message."""
    items: list[tuple[list[Any], str]] = (
        [(path, command)]
        if isinstance(command, str)
        else [([*path, i], c) for i, c in enumerate(command)]
    )
    for p, text in items:
        try:
            found = placeholders(text)
            if isinstance(command, str) and p and p[-1] == "command":
                shell_contexts(text)  # a command string runs through /bin/sh
        except TemplateError as e:
            check.at(doc, p, str(e), offset=e.offset)
            continue
        for name, offset in found:
            if name not in declared:
                check.at(
                    doc,
                    p,
                    f"placeholder '$<{name}>' is not declared by {owner}",
                    did_you_mean(name, declared - set(BUILTIN_PLACEHOLDERS))
                    or f"declare a parameter '{name}', or write '$$<{name}>' for literal text",
                    offset=offset,
                )


def used_names(templates: Iterable[str | list[str]]) -> set[str]:
    """Placeholder names used in `templates` (malformed ones are reported elsewhere)."""
    used: set[str] = set()
    for template in templates:
        for text in [template] if isinstance(template, str) else template:
            try:
                used.update(n for n, _ in placeholders(text))
            except TemplateError:
                continue
    return used
