"""The kind plugins the loader asks about, one instance of each per process: the extra
`$<names>` a kind fills in, the command it runs when a manifest writes none, and the hint
that names the kinds with one. Loading only: what a kind does with a task is the planner's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner import plugins
from runner.errors import UserError
from runner.manifest.template import TemplateError, placeholders

__all__ = ["command_hint", "default_command", "kind_placeholders", "kind_plugin"]


# kind name -> its plugin's one instance, or None when it is not installed
_KINDS: dict[str, Any] = {}


def kind_plugin(name: str) -> Any:
    """The kind plugin `name` (one instance per process), or None when it is not installed."""
    if name not in _KINDS:
        _KINDS[name] = plugins.load("kind", name)() if name in plugins.available("kind") else None
    return _KINDS[name]


def kind_placeholders(name: str) -> set[str]:
    """Extra `$<name>`s a kind fills in for commands (blender's `$<frames>`)."""
    kind = kind_plugin(name)
    return set(kind.placeholders) if kind is not None else set()


def default_command(name: str) -> str | list[str] | None:
    """The command a task or App of kind `name` runs when it writes none: the kind's
    `default_command` (runner.contracts.Kind), or None when it has none or is not installed.

    The one place that reads the member (a kind written before it existed has the
    contract's default, None). A declared default is checked like a written command; a bad
    one is the plugin's fault."""
    kind = kind_plugin(name)
    declared = kind.default_command if kind is not None else None
    if declared is None:
        return None
    parts = [declared] if isinstance(declared, str) else declared
    problem = None
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        problem = "it must be a string, a list of strings or None"
    elif not parts or not parts[0].strip():
        problem = "it is empty"
    elif any(_has_placeholders(p) for p in parts):
        problem = "it holds $<placeholders>, which only a command a manifest writes may have"
    if problem is not None:
        raise UserError(
            f"kind plugin {name!r} declares an invalid default_command {declared!r}: {problem}; "
            "upgrade the package that provides it, or write `command:` in the manifest"
        )
    return list(parts) if isinstance(declared, list) else declared


def _has_placeholders(text: str) -> bool:
    try:
        return bool(placeholders(text))
    except TemplateError:  # a malformed `$<`
        return True


def command_hint(kinds: Iterable[str]) -> str:
    """What to write when `command:` is missing: the command, or a kind that has a default."""
    with_default = []
    for k in sorted(kinds):
        try:
            if default_command(k) is not None:
                with_default.append(k)
        except UserError:  # a kind that fails to load, or declares a bad default: no hint
            continue
    more = f", or set a kind that has a default command ({', '.join(with_default)})"
    return "add 'command: ...' here" + (more if with_default else "")
