"""The one substitution syntax: `$<name>`; `$$<` writes a literal `$<`.

In a command given as a string every substituted value is quoted for where it stands (bare,
inside "...", inside '...'; refused inside backticks and here-documents), so a value can never
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


def shell_contexts(template: str) -> dict[int, str]:
    """The shell quoting context of every `$<...>` (by offset) in a /bin/sh command string.

    Contexts: "plain" (unquoted, also inside `$(...)`), "double" ("..."), "single" ('...'),
    "backtick" and "heredoc". A small lexer of POSIX sh quoting; raises TemplateError for
    the two contexts where no quoting of a value is safe (backticks and here-documents).
    """
    out: dict[int, str] = {}
    stack = ["plain"]
    heredocs: list[tuple[str, bool]] = []  # delimiters seen on this line, strip tabs?
    i, n = 0, len(template)
    while i < n:
        top = stack[-1]
        if template.startswith("$$<", i):
            i += 3
            continue
        if template.startswith("$<", i):
            if top in ("backtick", "heredoc"):
                where = "`...`" if top == "backtick" else "a here-document"
                raise TemplateError(
                    f"a placeholder inside {where} cannot be quoted safely; "
                    + (
                        "use $(...) instead of backticks"
                        if top == "backtick"
                        else "pass the value in an environment variable (env:) instead"
                    ),
                    i,
                )
            out[i] = top
            end = template.find(">", i)
            i = end + 1 if end > 0 else i + 2
            continue
        c = template[i]
        if top == "single":
            if c == "'":
                stack.pop()
        elif top == "heredoc":
            line_end = template.find("\n", i)
            line_end = n if line_end < 0 else line_end
            delim, strip = heredocs[0]
            line = template[i:line_end]
            if (line.lstrip("\t") if strip else line) == delim:
                heredocs.pop(0)
                if not heredocs:
                    stack.pop()
            i = line_end + 1
            continue
        elif c == "\\":
            i += 2
            continue
        elif top == "double":
            if c == '"':
                stack.pop()
            elif template.startswith("$(", i):
                stack.append("plain")
                i += 2
                continue
            elif c == "`":
                stack.append("backtick")
        else:  # plain or backtick
            if c == "'":
                stack.append("single")
            elif c == '"':
                stack.append("double")
            elif template.startswith("$(", i):
                stack.append("plain")
                i += 2
                continue
            elif c == "(" and len(stack) > 1:
                stack.append("plain")
            elif c == ")" and len(stack) > 1 and top == "plain":
                stack.pop()
            elif c == "`":
                if top == "backtick":
                    stack.pop()
                else:
                    stack.append("backtick")
            elif template.startswith("<<", i) and not template.startswith("<<<", i):
                m = _HEREDOC.match(template, i)
                if m:
                    delim = m.group(2).strip("'\"").replace("\\", "")
                    heredocs.append((delim, m.group(1) == "-"))
                    i = m.end()
                    continue
            elif c == "\n" and heredocs:
                stack.append("heredoc")
        i += 1
    return out


_HEREDOC = re.compile(r"<<(-?)[ \t]*('[^']*'|\"[^\"]*\"|[^\s;&|<>()]+)")


def _quote_for(context: str, value: str) -> str:
    if context == "double":
        # inside "...", a backslash makes $ ` " \\ literal
        return re.sub(r'([\\"$`])', r"\\\1", value)
    if context == "single":
        # close the quote, add an escaped quote, reopen
        return value.replace("'", "'\\''")
    return shlex.quote(value)


def render(template: str, values: Mapping[str, str], *, quote: bool) -> str:
    """Substitute `values` into `template`; with `quote`, each value is quoted for the shell
    context it sits in (unquoted, "...", '...'), so it always arrives as literal text."""
    if "$<" not in template:
        return template
    contexts = shell_contexts(template) if quote else {}

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$<":
            return "$<"
        name = m.group(1)
        if name is None or name not in values:
            raise TemplateError(f"no value for placeholder {m.group(0)!r}", m.start())
        v = values[name]
        return _quote_for(contexts.get(m.start(), "plain"), v) if quote else v

    return _TOKEN.sub(sub, template)
