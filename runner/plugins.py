"""Plugin discovery through entry points; built-ins are found exactly like third-party plugins.

Groups: `runner.executors`, `runner.kinds`, `runner.stores`, and `runner.commands` for
applications that add a command to the CLI (the dashboard's `serve`). Names are listed without
importing anything; a plugin is imported only when it is used, and a plugin that fails to load
is reported with its name, package and the fix. A loaded plugin is checked against its contract
(`runner.contracts`): a required member it lacks is an error naming the package and what is
missing; an optional member it lacks gets the contract's default (a plugin written before the
member existed keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from runner.errors import UserError

__all__ = ["GROUPS", "REQUIRED", "PluginInfo", "available", "conform", "discovered", "load"]

GROUPS = {
    "executor": "runner.executors",
    "kind": "runner.kinds",
    "store": "runner.stores",
    "command": "runner.commands",
}


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


# what a plugin of each group must implement itself (the rest has defaults in the base class)
REQUIRED = {
    "executor": ("submit", "poll", "wait", "cancel", "logs", "reclaim", "close"),
    "kind": ("expand", "verify"),
    "store": ("stat", "list", "get", "put", "delete"),
}


def _base(group: str) -> type:
    """The base class holding the defaults of the group's optional members."""
    from runner import contracts  # here: the contracts use the stores, which use this module

    bases: dict[str, type] = {
        "executor": contracts.ExecutorBase,
        "kind": contracts.KindBase,
        "store": contracts.StoreBase,
    }
    return bases[group]


def conform(group: str, name: str, obj: Any, distribution: str) -> Any:
    """`obj` (what a plugin registers) checked against its group's contract; a class lacking
    optional members comes back as a subclass that has the contract's defaults for them."""
    where = f"{group} plugin {name!r} (package {distribution!r})"
    if group == "command":  # a function the CLI calls with its command's arguments
        if not callable(obj):
            raise UserError(f"{where} registers {obj!r}, not a callable; upgrade that package")
        return obj
    protocol = {"executor": "Executor", "kind": "Kind", "store": "Store"}[group]
    if not isinstance(obj, type):
        raise UserError(
            f"{where} registers {obj!r}, not a class; its entry point must name a class that "
            f"implements runner.contracts.{protocol}; upgrade that package"
        )
    missing = [m for m in REQUIRED[group] if not callable(getattr(obj, m, None))]
    if missing:
        raise UserError(
            f"{where} does not implement runner.contracts.{protocol}: {obj.__name__} has no "
            f"{', '.join(missing)}; upgrade that package (its author: subclass "
            f"runner.contracts.{protocol}Base and write them)"
        )
    base = _base(group)
    if group == "executor":
        from runner.contracts import ExecutorSettings

        model = getattr(obj, "settings_model", ExecutorSettings)
        if not (isinstance(model, type) and issubclass(model, ExecutorSettings)):
            raise UserError(
                f"{where}: settings_model is {model!r}, not a subclass of "
                "runner.contracts.ExecutorSettings; upgrade that package"
            )
    if issubclass(obj, base):
        return obj
    # the optional members it lacks, from the contract's base (its own come first)
    return type(obj.__name__, (obj, base), {"__module__": obj.__module__})


@cache
def load(group: str, name: str) -> Any:
    """The class a plugin registers, imported on first use and checked against its
    contract."""
    eps = _entry_points(group)
    if name not in eps:
        names = ", ".join(available(group)) or "none"
        raise UserError(
            f"no {group} plugin named {name!r} is installed (installed: {names}); "
            f"install the package that provides it, then check `runner plugins`"
        )
    ep = eps[name]
    dist = ep.dist.name if ep.dist else "?"
    try:
        obj = ep.load()
    except Exception as e:  # a broken plugin must not look like a runner crash
        raise UserError(
            f"{group} plugin {name!r} from package {dist!r} failed to load: "
            f"{type(e).__name__}: {e}; reinstall or upgrade that package"
        ) from e
    return conform(group, name, obj, dist)
