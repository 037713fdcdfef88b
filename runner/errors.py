"""Errors meant for people: a position, what is wrong, and how to fix it.

Every user-facing problem becomes a `Diagnostic`; a batch of them travels in a `UserError`,
which the CLI renders (text with source line and caret, or JSON) and turns into exit code 2.
This module must not import anything heavier than the standard library.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Diagnostic", "UserError", "render_json", "render_text"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in user input."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    hint: str | None = None

    def where(self) -> str:
        """`file:line:col` (as much of it as is known)."""
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class UserError(Exception):
    """A problem with what the user asked for; never shown as a traceback."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.message for d in diagnostics))


def _source_line(cache: dict[str, list[str] | None], file: str, line: int) -> str | None:
    if file not in cache:
        try:
            cache[file] = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            cache[file] = None
    lines = cache[file]
    if lines is None or not 1 <= line <= len(lines):
        return None
    return lines[line - 1]


def render_text(diagnostics: list[Diagnostic]) -> str:
    """Each problem as `file:line:col: error: message`, the source line, a caret and a hint."""
    cache: dict[str, list[str] | None] = {}
    out: list[str] = []
    for d in diagnostics:
        out.append(f"{d.where()}: error: {d.message}")
        if d.file and d.line is not None:
            src = _source_line(cache, d.file, d.line)
            if src is not None:
                out.append(f"    {src}")
                col = max((d.column or 1) - 1, 0)
                # keep tabs so the caret lines up under the same character
                pad = "".join(c if c == "\t" else " " for c in src[:col])
                out.append(f"    {pad}^")
        if d.hint:
            out.append(f"  hint: {d.hint}")
    n = len(diagnostics)
    out.append(f"{n} error{'s' if n != 1 else ''} found")
    return "\n".join(out)


def render_json(diagnostics: list[Diagnostic]) -> str:
    """The same problems as a JSON document: {"errors": [...]}."""
    return json.dumps({"errors": [asdict(d) for d in diagnostics]}, indent=2)
