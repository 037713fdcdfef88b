"""Typed App parameters: declaration, checking a value against its type, and its text form.

Values come from YAML (already typed) or from `--set` on the command line (always text); both go
through `coerce`, which returns the canonical value or raises ParamError with a fix. Pure.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runner.manifest.frames import FrameError, parse_frames

__all__ = ["PARAM_TYPES", "ParamError", "ParamSpec", "coerce", "to_text"]

ParamType = Literal["string", "int", "float", "bool", "enum", "path", "uri", "frames"]
PARAM_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "enum", "path", "uri", "frames")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S*$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParamError(ValueError):
    """A value that does not fit its parameter's type."""


class ParamSpec(BaseModel):
    """A typed parameter of an App."""

    model_config = ConfigDict(extra="forbid")

    type: ParamType = "string"
    default: Any = None
    required: bool = False
    description: str | None = None
    overridable: bool = True
    values: list[str] | None = Field(default=None, description="allowed values of an enum")
    min: float | None = Field(default=None, description="smallest allowed value (int, float)")
    max: float | None = Field(default=None, description="largest allowed value (int, float)")

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum parameter needs 'values: [A, B, ...]'")
        if self.type != "enum" and self.values is not None:
            raise ValueError("'values' is only for parameters of type enum")
        if self.type not in ("int", "float") and (self.min is not None or self.max is not None):
            raise ValueError("'min' and 'max' are only for parameters of type int or float")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({_num(self.min)}) is larger than 'max' ({_num(self.max)})")
        if self.required and not self.overridable and self.default is None:
            raise ValueError(
                "a required parameter that tasks may not set can never have a value; "
                "make it overridable or give it a default"
            )
        if self.default is not None:
            try:
                self.default = coerce(self, self.default)
            except ParamError as e:
                raise ValueError(f"default: {e}") from None
        return self


def coerce(spec: ParamSpec, value: Any) -> Any:
    """`value` checked against `spec` and converted to its canonical Python form."""
    typed = _typed(spec, value)
    if spec.min is not None and typed < spec.min:
        raise ParamError(f"{_num(typed)} is below the smallest allowed, {_num(spec.min)}")
    if spec.max is not None and typed > spec.max:
        raise ParamError(f"{_num(typed)} is above the largest allowed, {_num(spec.max)}")
    return typed


def _num(x: float) -> str:
    """A bound or value as people write it: 4, not 4.0."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)


def _typed(spec: ParamSpec, value: Any) -> Any:
    """`value` in its type's canonical form (bounds not checked)."""
    t = spec.type
    if value is None:
        raise ParamError(f"expected a {t} value, got nothing")
    if isinstance(value, (dict, list)):
        raise ParamError(
            f"expected a {t} value, got a {'mapping' if isinstance(value, dict) else 'list'}"
        )
    if t == "int":
        if isinstance(value, bool):
            raise ParamError("expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            try:
                return int(value)
            except ValueError:  # more digits than Python converts from text
                raise ParamError(f"expected an integer, got {len(value)} digits") from None
        raise ParamError(f"expected an integer, got {value!r}")
    if t == "float":
        return _float(value)
    if t == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ParamError(f"expected true or false, got {value!r}")
    text = str(value) if not isinstance(value, bool) else str(value).lower()
    if t == "enum":
        assert spec.values is not None
        if text not in spec.values:
            raise ParamError(f"{text!r} is not one of {', '.join(spec.values)}")
        return text
    if t == "frames":
        try:
            parse_frames(value if isinstance(value, int) else text)
        except FrameError as e:
            raise ParamError(str(e)) from None
        return text.strip()
    if "\x00" in text:
        raise ParamError("a value cannot contain a NUL character")
    if t == "uri" and not _URI.match(text):
        raise ParamError(
            f"{text!r} is not a URI; write it like 'oss://bucket/prefix/' or 'file:///data'"
        )
    if t == "path" and not text:
        raise ParamError("expected a path, got an empty string")
    return text


def _float(value: Any) -> float:
    """A finite float from a YAML number or text like '0.5' or '1e-3'."""
    if isinstance(value, bool):
        raise ParamError("expected a number, got a boolean")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise ParamError("expected a number, got an integer too large for one") from None
    try:
        number = float(value) if isinstance(value, float) else float(str(value))
    except ValueError:
        raise ParamError(f"expected a number, got {_short(value)}") from None
    if not math.isfinite(number):
        raise ParamError(f"expected a finite number, got {_short(value)}")
    return number


def _short(value: Any) -> str:
    """`value` for a message, cut short when it is long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_text(value: Any) -> str:
    """How a parameter value appears in a command line or environment variable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):  # a kind's structured parameter, as JSON
        return json.dumps(value, sort_keys=True)
    return str(value)
