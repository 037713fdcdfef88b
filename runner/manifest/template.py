"""The one substitution syntax: `$<name>`; `$$<` writes a literal `$<`.

In a command given as a string every substituted value is shell-quoted, so a value can never
become shell syntax; a command given as a list is substituted element by element and later run
without a shell. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

__all__ = ["TemplateError", "placeholders", "render"]

_TOKEN = re.compile(r"\$\$<|\$<([^<>\s]*)>|\$<")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    """A malformed or unknown placeholder; `offset` is its position in the template."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def placeholders(template: str) -> list[tuple[str, int]]:
    """Every `$<name>` in `template` with its character offset; raises on malformed ones."""
    found: list[tuple[str, int]] = []
    for m in _TOKEN.finditer(template):
        token = m.group(0)
        if token == "$$<":
            continue
        name = m.group(1)
        if name is None:
            raise TemplateError(
                "unterminated placeholder '$<'; write '$<name>', or '$$<' for a literal '$<'",
                m.start(),
            )
        if not _NAME.match(name):
            raise TemplateError(
                f"'$<{name}>' is not a valid placeholder; names use letters, digits and '_'",
                m.start(),
            )
        found.append((name, m.start()))
    return found


def render(template: str, values: Mapping[str, str], *, quote: bool) -> str:
    """Substitute `values` into `template`, shell-quoting each value when `quote`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$<":
            return "$<"
        name = m.group(1)
        if name is None or name not in values:
            raise TemplateError(f"no value for placeholder {m.group(0)!r}", m.start())
        v = values[name]
        return shlex.quote(v) if quote else v

    if "$<" not in template:
        return template
    return _TOKEN.sub(sub, template)
