"""Unit tests of the pure manifest pieces: frame ranges, durations, `$<...>` templates, params,
and a kind's default command."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from pydantic import ValidationError

from runner import plugins
from runner.contracts import Kind
from runner.errors import UserError
from runner.manifest import loader
from runner.manifest.durations import parse_duration
from runner.manifest.frames import FrameError, parse_frames
from runner.manifest.params import PARAM_TYPES, ParamError, ParamSpec, coerce, to_text
from runner.manifest.source import read_documents
from runner.manifest.template import TemplateError, placeholders, render

# -- frames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "frames"),
    [
        ("1-10", list(range(1, 11))),
        ("1,3,5-10", [1, 3, 5, 6, 7, 8, 9, 10]),
        ("5,1-3,2", [5, 1, 2, 3]),  # order as written, duplicates dropped
        ("1..3", [1, 2, 3]),
        ("7", [7]),
        (7, [7]),
        (" 1 - 3 , 9 ", [1, 2, 3, 9]),
        ("-2-1", [-2, -1, 0, 1]),
        ("4-4", [4]),
        ("3,3,3", [3]),
    ],
)
def test_parse_frames(spec: str | int, frames: list[int]) -> None:
    assert parse_frames(spec) == frames


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("10-1", "runs backwards; write it as '1-10'"),
        ("abc", "'abc' is not a frame or range"),
        ("1-", "'1-' is not a frame or range"),
        ("1,,2", "'' is not a frame or range"),
        ("1-3-5", "is not a frame or range"),
        ("1.5", "is not a frame or range"),
        ("", "empty"),
        ("  ", "empty"),
        ("0-1000000", "more than 1,000,000 frames"),
        ("1" * 5000, "is not a frame number"),
    ],
)
def test_bad_frames_say_how_to_write_them(spec: str, says: str) -> None:
    with pytest.raises(FrameError) as e:
        parse_frames(spec)
    assert says in str(e.value)


def test_frames_reject_booleans() -> None:
    with pytest.raises(FrameError, match="boolean"):
        parse_frames(True)


# -- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
        ("45s", 45.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        (" 2 h ", 7200.0),
        ("1.5h", 5400.0),
        ("1m30s", 90.0),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "is not a duration"),
        ("soon", "is not a duration"),
        ("1h30", "is not a duration"),
        ("30x", "is not a duration"),
        ("-5s", "is not a duration"),
        ("0s", "greater than zero"),
        (0, "greater than zero"),
        (-3, "greater than zero"),
        (True, "boolean"),
        ("nan", "finite"),
        ("inf", "finite"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (10**400, "finite"),
    ],
)
def test_bad_durations(value: Any, says: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_duration(value)
    assert says in str(e.value)


# -- templates ------------------------------------------------------------------------------------


def test_placeholders_with_offsets() -> None:
    assert placeholders("run $<a> -o $<b_2>/x") == [("a", 4), ("b_2", 12)]
    assert placeholders("no placeholders, $HOME and ${X}") == []


def test_literal_dollar_angle_is_not_a_placeholder() -> None:
    assert placeholders("echo $$<a> $<b>") == [("b", 11)]
    assert render("echo $$<a> $<b>", {"b": "B"}, quote=True) == "echo $<a> B"


@pytest.mark.parametrize(
    ("template", "offset", "says"),
    [
        ("echo $<name", 5, "unterminated placeholder"),
        ("echo $<", 5, "unterminated placeholder"),
        ("x $<a b>", 2, "unterminated placeholder"),
        ("a $<1st>", 2, "'$<1st>' is not a valid placeholder"),
        ("a $<>", 2, "'$<>' is not a valid placeholder"),
        ("a $<x-y>", 2, "'$<x-y>' is not a valid placeholder"),
    ],
)
def test_malformed_placeholders(template: str, offset: int, says: str) -> None:
    with pytest.raises(TemplateError) as e:
        placeholders(template)
    assert says in str(e.value)
    assert e.value.offset == offset


HOSTILE = "x; touch pwned $(id) `id` '\""


def test_string_mode_shell_quotes_every_value() -> None:
    out = render("echo $<v> $<w>", {"v": HOSTILE, "w": "a b"}, quote=True)
    assert shlex.split(out) == ["echo", HOSTILE, "a b"]


def test_string_mode_quotes_empty_values() -> None:
    assert shlex.split(render("cmd $<v> end", {"v": ""}, quote=True)) == ["cmd", "", "end"]


def test_list_mode_substitutes_raw_text() -> None:
    assert render("--name=$<v>", {"v": HOSTILE}, quote=False) == f"--name={HOSTILE}"


def test_value_that_looks_like_a_placeholder_is_not_expanded_again() -> None:
    assert render("$<a>", {"a": "$<b>", "b": "no"}, quote=False) == "$<b>"


def test_render_without_a_value_raises() -> None:
    with pytest.raises(TemplateError, match="no value for placeholder"):
        render("echo $<missing>", {}, quote=True)


# -- params ---------------------------------------------------------------------------------------


def spec(type_: str, **kw: Any) -> ParamSpec:
    return ParamSpec.model_validate({"type": type_, **kw})


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("string", "hello", "hello"),
        ("string", 42, "42"),
        ("string", True, "true"),
        ("int", 3, 3),
        ("int", "-7", -7),
        ("int", " 12 ", 12),  # text from --set
        ("float", 0.5, 0.5),
        ("float", 2, 2.0),
        ("float", "1e-3", 0.001),
        ("bool", True, True),
        ("bool", "yes", True),
        ("bool", "Off", False),
        ("bool", "0", False),
        ("bool", 1, True),
        ("path", "scenes/a b.blend", "scenes/a b.blend"),
        ("uri", "oss://bucket/prefix/", "oss://bucket/prefix/"),
        ("uri", "file:///data", "file:///data"),
        ("frames", "1-10", "1-10"),
        ("frames", " 1,3,5-10 ", "1,3,5-10"),
        ("frames", 7, "7"),
    ],
)
def test_coerce_accepts(type_: str, value: Any, expected: Any) -> None:
    got = coerce(spec(type_), value)
    assert got == expected
    assert type(got) is type(expected)


def test_numbers_keep_within_their_bounds() -> None:
    threads = ParamSpec(type="int", min=1, max=64)
    assert coerce(threads, "8") == 8
    with pytest.raises(ParamError, match="0 is below the smallest allowed, 1"):
        coerce(threads, 0)
    with pytest.raises(ParamError, match="65 is above the largest allowed, 64"):
        coerce(threads, "65")
    scale = ParamSpec(type="float", min=0.5)
    with pytest.raises(ParamError, match=r"0\.25 is below the smallest allowed, 0\.5"):
        coerce(scale, 0.25)
    with pytest.raises(ValueError, match="only for parameters of type int or float"):
        ParamSpec(type="string", max=3)
    with pytest.raises(ValueError, match=r"'min' \(5\) is larger than 'max' \(2\)"):
        ParamSpec(type="int", min=5, max=2)
    with pytest.raises(ValueError, match="default: 0 is below"):
        ParamSpec(type="int", min=1, default=0)


def test_coerce_enum() -> None:
    fmt = spec("enum", values=["PNG", "JPEG"])
    assert coerce(fmt, "JPEG") == "JPEG"
    with pytest.raises(ParamError, match="'GIF' is not one of PNG, JPEG"):
        coerce(fmt, "GIF")
    with pytest.raises(ParamError, match="is not one of"):
        coerce(fmt, "png")  # case matters: the value is passed on as written


@pytest.mark.parametrize(
    ("type_", "value", "says"),
    [
        ("int", "two", "expected an integer, got 'two'"),
        ("int", 2.5, "expected an integer"),
        ("int", True, "got a boolean"),
        ("int", "1" * 5000, "expected an integer, got 5000 digits"),
        ("float", "fast", "expected a number, got 'fast'"),
        ("float", False, "got a boolean"),
        ("float", "nan", "finite"),
        ("float", "1e999", "finite"),
        ("float", 10**400, "too large"),
        ("bool", "maybe", "expected true or false"),
        ("bool", 2, "expected true or false"),
        ("uri", "bucket/prefix", "is not a URI"),
        ("uri", "oss://has space", "is not a URI"),
        ("path", "", "empty"),
        ("path", "a\x00b", "NUL"),
        ("frames", "10-1", "runs backwards"),
        ("frames", "x", "is not a frame or range"),
        ("frames", True, "got a boolean"),
        ("string", None, "got nothing"),
        ("string", [1], "got a list"),
        ("int", {"a": 1}, "got a mapping"),
    ],
)
def test_coerce_rejects(type_: str, value: Any, says: str) -> None:
    with pytest.raises(ParamError) as e:
        coerce(spec(type_), value)
    assert says in str(e.value)


def test_every_param_type_accepts_text_from_set() -> None:
    """`--set task.p=VALUE` always gives text; every type must read its own text form."""
    samples = {
        "string": "s",
        "int": 5,
        "float": 2.5,
        "bool": False,
        "enum": "B",
        "path": "a/b",
        "uri": "oss://b/p/",
        "frames": "1-3",
    }
    assert set(samples) == set(PARAM_TYPES)
    for type_, value in samples.items():
        s = spec(type_, values=["A", "B"]) if type_ == "enum" else spec(type_)
        canonical = coerce(s, value)
        assert coerce(s, to_text(canonical)) == canonical, type_


def test_to_text() -> None:
    assert to_text(True) == "true"
    assert to_text(False) == "false"
    assert to_text(3) == "3"
    assert to_text(0.25) == "0.25"


def test_param_spec_checks_its_default() -> None:
    assert spec("int", default="4").default == 4
    with pytest.raises(ValidationError, match="default: expected an integer"):
        spec("int", default="four")


def test_enum_needs_values_and_only_enum_has_them() -> None:
    with pytest.raises(ValidationError, match="needs 'values"):
        spec("enum")
    with pytest.raises(ValidationError, match="only for parameters of type enum"):
        spec("string", values=["a"])
    with pytest.raises(ValidationError, match="default: 'C' is not one of A, B"):
        spec("enum", values=["A", "B"], default="C")


def test_unknown_param_type_and_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        spec("integer")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ParamSpec.model_validate({"type": "int", "defualt": 3})


# -- YAML source ----------------------------------------------------------------------------------


def test_positions_of_values_and_keys() -> None:
    docs, problems = read_documents("m.yaml", "a: 1\n---\nb:\n  c: [x, yy]\n")
    assert problems == []
    assert [d.data for d in docs] == [{"a": 1}, {"b": {"c": ["x", "yy"]}}]
    second = docs[1]
    loc = second.locate(["b", "c", 1])  # lines count from the top of the file
    assert (loc.file, loc.line, loc.column) == ("m.yaml", 4, 10)
    key = second.locate(["b", "c"], key=True)
    assert (key.line, key.column) == (4, 3)
    # a path that does not exist points at the nearest parent that does
    nearest = second.locate(["b", "nope", 3])
    assert (nearest.line, nearest.column) == (4, 3)


@pytest.mark.parametrize(
    ("text", "line", "column", "says"),
    [
        ("a: 1\na: 2\n", 2, 1, "duplicate key 'a'"),
        ("a: [1\n", 2, 1, "invalid YAML"),
        ("a: 1\n b: 2\n", 2, 3, "invalid YAML"),
        ("a: 1\nb: x\x01y\n", 2, 5, "U+0001 is not allowed"),
        ('a: "x\\0y"\n', 1, 4, "NUL"),
        ("a: !!bool maybe\n", 1, 4, "'maybe' is not a valid !!bool value"),
        ("a: !!int x\n", 1, 4, "'x' is not a valid !!int value"),
        ("a: !!timestamp x\n", 1, 4, "not a valid !!timestamp value"),
        ("a: !!seq x\n", 1, 4, "needs a list or mapping"),
        ("a: &r [*r]\n", 1, 4, "alias refers to the value that contains it"),
        ("a: {<<: 5}\n", 1, 9, "'<<' merges a mapping"),
        ("? [1]\n: 2\n", 1, 3, "a mapping key must be a plain value"),
    ],
)
def test_yaml_problems_are_diagnostics(text: str, line: int, column: int, says: str) -> None:
    _, problems = read_documents("m.yaml", text)
    assert len(problems) == 1, problems
    p = problems[0]
    assert says in p.message
    assert (p.file, p.line, p.column) == ("m.yaml", line, column)


def test_merge_keys_can_be_overridden_without_a_duplicate_key_error() -> None:
    docs, problems = read_documents("m.yaml", "base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n")
    assert problems == []
    assert docs[0].data["use"] == {"x": 1, "y": 3}


def test_nested_aliases_are_shared_not_copied() -> None:
    """A 'billion laughs' document builds in linear time and memory."""
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    for i in range(1, 30):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    docs, problems = read_documents("m.yaml", "\n".join(lines) + "\n")
    assert problems == []
    assert len(docs[0].data["l29"]) == 10


# -- a kind's default command -------------------------------------------------------------------


class _Kind:
    """A kind as a plugin writes it; `default_command` is set per test."""

    def expand(self, *, task: Any) -> list[Any]:
        return []

    def verify(self, *, task: Any, instance: Any, stdout: Any, stderr: Any) -> str | None:
        return None


@pytest.mark.parametrize("declared", ["tool", ["tool", "--batch"], None])
def test_a_kind_declares_its_default_command(
    monkeypatch: pytest.MonkeyPatch, declared: str | list[str] | None
) -> None:
    kind = plugins.conform("kind", "k", _Kind, "a-kind")()
    kind.default_command = declared
    monkeypatch.setitem(loader._KINDS, "k", kind)
    assert isinstance(kind, Kind)
    assert loader.default_command("k") == declared


def test_a_kind_written_before_default_command_existed_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(loader._KINDS, "old", plugins.conform("kind", "old", _Kind, "old-kind")())
    assert loader.default_command("old") is None
    monkeypatch.setitem(loader._KINDS, "missing", None)  # not installed
    assert loader.default_command("missing") is None


@pytest.mark.parametrize("declared", ["", "  ", [], [""], ["tool", 3], 7, "tool $<x>", ["$<y>"]])
def test_a_bad_default_command_is_the_plugins_fault(
    monkeypatch: pytest.MonkeyPatch, declared: Any
) -> None:
    kind = plugins.conform("kind", "bad", _Kind, "bad-kind")()
    kind.default_command = declared
    monkeypatch.setitem(loader._KINDS, "bad", kind)
    with pytest.raises(UserError, match="kind plugin 'bad' declares an invalid default_command"):
        loader.default_command("bad")
