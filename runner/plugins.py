"""Plugin discovery through entry points; built-ins are found exactly like third-party plugins.

Groups: `runner.executors`, `runner.kinds`, `runner.stores`. Names are listed without importing
anything; a plugin is imported only when it is used, and a plugin that fails to load is reported
with its name, package and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from runner.errors import UserError

__all__ = ["GROUPS", "PluginInfo", "available", "discovered", "load"]

GROUPS = {"executor": "runner.executors", "kind": "runner.kinds", "store": "runner.stores"}


@dataclass(frozen=True)
class PluginInfo:
    """A discovered plugin: what it provides, under which name, from which distribution."""

    group: str
    name: str
    value: str
    distribution: str
    version: str


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUPS[group]):
        found.setdefault(ep.name, ep)
    return found


def available(group: str) -> list[str]:
    """Names registered for `group` ('executor', 'kind' or 'store')."""
    return sorted(_entry_points(group))


def discovered() -> list[PluginInfo]:
    """Every plugin of every group, for `runner plugins`."""
    out = []
    for group in GROUPS:
        for name, ep in sorted(_entry_points(group).items()):
            dist = ep.dist
            out.append(
                PluginInfo(
                    group,
                    name,
                    ep.value,
                    dist.name if dist else "?",
                    dist.version if dist else "?",
                )
            )
    return out


@cache
def load(group: str, name: str) -> Any:
    """The object a plugin registers (a class or factory), imported on first use."""
    eps = _entry_points(group)
    if name not in eps:
        names = ", ".join(available(group)) or "none"
        raise UserError(
            f"no {group} plugin named {name!r} is installed (installed: {names}); "
            f"install the package that provides it, then check `runner plugins`"
        )
    ep = eps[name]
    try:
        return ep.load()
    except Exception as e:  # a broken plugin must not look like a runner crash
        dist = ep.dist.name if ep.dist else "?"
        raise UserError(
            f"{group} plugin {name!r} from package {dist!r} failed to load: "
            f"{type(e).__name__}: {e}; reinstall or upgrade that package"
        ) from e
