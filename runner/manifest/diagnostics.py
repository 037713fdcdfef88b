"""Diagnostics: problems with a position, collected in one pass, in the order of the files.

`Checker` collects them while the loader works (a problem never stops the loading: every
problem is reported at once) and turns pydantic's validation errors into messages for people,
each at its key or value with a hint. It only reports; what is checked lives with what it
checks (the loader, a task's resolution, the placeholder rules).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.errors import Diagnostic
from runner.manifest.source import Document

__all__ = ["Checker", "did_you_mean", "in_file_order", "type_name"]


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """' did you mean 'x'?' style hint text, or None."""
    opts = list(options)
    close = difflib.get_close_matches(str(word), opts, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if opts and len(opts) <= 12:
        return "expected one of: " + ", ".join(sorted(opts))
    return None


class Checker:
    """Collects positioned problems while the loader resolves documents into a bundle."""

    def __init__(self) -> None:
        self.problems: list[Diagnostic] = []
        # (kind, name) of documents already reported as invalid: references to them are not
        # "unknown" too, which would send the reader after a second, false problem
        self.broken: set[tuple[str, str]] = set()

    def at(
        self,
        doc: Document,
        path: Sequence[Any],
        message: str,
        hint: str | None = None,
        *,
        key: bool = False,
        offset: int | None = None,
    ) -> None:
        """A problem at `path` in `doc` (its key with `key`; `offset` characters into a
        string value)."""
        loc = doc.locate(path, key=key) if offset is None else doc.locate_in(path, offset)
        self.problems.append(Diagnostic(message, loc.file, loc.line, loc.column, hint))

    def pydantic(self, doc: Document, cls: type[BaseModel], exc: ValidationError) -> None:
        """pydantic's errors for `doc` as problems for people: one per place, at the key or
        value it is about, with the keys that are allowed there."""
        grouped: dict[tuple[tuple[Any, ...], bool], list[dict[str, Any]]] = {}
        for err in exc.errors(include_url=False):
            found, real = _real_path(doc.data, err["loc"])
            loc = tuple(real if err["type"] in ("missing", "extra_forbidden") else found)
            # a mapping key that is wrong itself (a task called 'a b') is shown at the key
            is_key = err["loc"][-1:] == ("[key]",)
            grouped.setdefault((loc, is_key), []).append(dict(err, real=real))
        for (loc, is_key), errs in grouped.items():
            first = errs[0]
            etype = first["type"]
            if etype == "extra_forbidden":
                key = first["real"][-1]
                allowed = _allowed_keys(cls, first["real"][:-1])
                self.at(
                    doc,
                    first["real"],
                    f"unknown key {key!r}",
                    did_you_mean(str(key), allowed),
                    key=True,
                )
            elif etype == "missing":
                missing = first["real"][-1]
                self.at(
                    doc,
                    first["real"][:-1],
                    f"missing required key {missing!r}",
                    f"add '{missing}: ...' here",
                    key=True,  # under the key that opens the mapping, not its first entry
                )
            else:
                self.at(doc, list(loc), _message(errs, loc), key=is_key)


def in_file_order(problems: list[Diagnostic], files: Sequence[Path]) -> list[Diagnostic]:
    """Problems without repeats: command-line ones first, then file by file, top to bottom."""
    unique = list(dict.fromkeys(problems))
    order = {str(f): i for i, f in enumerate(files)}
    return sorted(
        unique,
        key=lambda d: (
            d.file in order,
            order.get(d.file or "", 0),
            d.line or 0,
            d.column or 0,
        ),
    )


def _real_path(data: Any, loc: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Drop pydantic's union-branch tags from `loc`; also return the path incl. a missing tail."""
    path: list[Any] = []
    cur = data
    for part in loc:
        if (isinstance(cur, dict) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and not _is_branch_tag(part):
            return path, [*path, part]
    return path, path


def _is_branch_tag(part: str) -> bool:
    return part in ("str", "int", "float", "bool", "function-after", "function-before") or (
        "[" in part or part.startswith("function-")
    )


def _allowed_keys(cls: type[BaseModel], path: Sequence[Any]) -> list[str]:
    t: Any = cls
    for part in path:
        t = _unwrap(t, part)
        if t is None:
            return []
    t = _unwrap(t, None)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return [f.alias or n for n, f in t.model_fields.items()]
    return []


def _unwrap(t: Any, part: Any) -> Any:
    """Follow one path element through a model field, dict value or list item type."""
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(t)[0], part)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(t):
            r = _unwrap(arg, part)
            if r is not None:
                return r
        return None
    if part is None:
        return t
    if isinstance(t, type) and issubclass(t, BaseModel):
        for n, f in t.model_fields.items():
            if part in (n, f.alias):
                return f.annotation
        return None
    if origin is dict:
        return typing.get_args(t)[1]
    if origin is list and isinstance(part, int):
        return typing.get_args(t)[0]
    return None


_EXPECT = {
    "string_type": "a string",
    "list_type": "a list",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def type_name(v: Any) -> str:
    """How a value reads in a message: `the string 'x'`, `a list`, `nothing`."""
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, str):
        return f"the string {v!r}"
    return f"{v!r}"


def _message(errs: list[dict[str, Any]], loc: tuple[Any, ...]) -> str:
    expects = [_EXPECT[e["type"]] for e in errs if e["type"] in _EXPECT]
    where = ".".join(str(p) for p in loc) or "document"
    if expects:
        got = type_name(errs[0].get("input"))
        return f"{where}: expected {' or '.join(dict.fromkeys(expects))}, got {got}"
    e = errs[0]
    if e["type"] == "string_pattern_mismatch":
        return (
            f"{where}: {e.get('input')!r} is not a valid name; use letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    msg = str(e["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return f"{where}: {msg}"
