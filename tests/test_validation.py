"""`runner validate` as a user meets it: every problem at once, each at `file:line:col` with the
source line and a caret under the spot, a hint where one helps, exit code 2, never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Result, cli, run, write

APP = """\
apiVersion: runner/v1
kind: App
metadata: {name: render}
spec:
  command: render -o $<output> -F $<format> -f $<frames> -s $<seed>
  params:
    frames: {type: frames, required: true}
    format: {type: enum, values: [PNG, JPEG], default: PNG}
    seed: {type: int, default: 1, overridable: false}
    scale: {type: float, default: 1.0}
  outputs: {output: {path: /work/out}}
---
apiVersion: runner/v1
kind: Cluster
metadata: {name: farm}
spec: {executor: local, slots: 2}
"""


def job(tasks: str, *, cluster: str = "farm", env: str = "") -> str:
    """A Job document whose `tasks:` block is `tasks` (indented to fit)."""
    body = "\n".join("    " + line if line else "" for line in tasks.strip("\n").splitlines())
    return (
        f"apiVersion: runner/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n  cluster: {cluster}\n"
        + env
        + f"  tasks:\n{body}\n"
    )


def manifest(tasks: str, **kw: str) -> str:
    return APP + "---\n" + job(tasks, **kw)


def validate(tmp_path: Path, text: str, *args: str) -> Result:
    """`runner validate m.yaml ARGS` in `tmp_path`, expecting a user error."""
    write(tmp_path / "m.yaml", text)
    r = cli("validate", "m.yaml", *args, cwd=tmp_path)
    assert r.code == 2, f"exit {r.code}\n{r.out}{r.err}"
    assert "Traceback" not in r.out + r.err
    return r


def line_of(text: str, fragment: str, nth: int = 0) -> int:
    """1-based line number of the `nth` line of `text` holding `fragment`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    return hits[nth]


def at(text: str, needle: str, *, line: str | None = None, file: str = "m.yaml") -> str:
    """`file:line:col` of `needle` on the first line holding `line` (default: `needle`)."""
    row = line_of(text, line or needle)
    col = text.splitlines()[row - 1].index(needle) + 1
    return f"{file}:{row}:{col}"


def expect(
    r: Result, where: str, message: str, *, hint: str | None = None, text: str | None = None
) -> None:
    """`where` (file:line:col) is reported with `message`, the source line and a caret.

    With `text` (the file's content) the quoted source line is checked against it too.
    """
    lines = r.err.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith(f"{where}: error: ")]
    assert heads, f"nothing reported at {where}:\n{r.err}"
    for i in heads:
        if message not in lines[i]:
            continue
        col = where.rsplit(":", 1)[1]
        source = lines[i + 1]
        caret = lines[i + 2]
        assert source.startswith("    "), r.err
        if text is not None:
            row = int(where.rsplit(":", 2)[1])
            assert source[4:] == text.splitlines()[row - 1], r.err
        assert caret.strip() == "^", r.err
        # the caret stands under column `col` of the quoted source line
        assert len(caret) - 4 == int(col), f"caret at {len(caret) - 4}, expected {col}\n{r.err}"
        if hint is not None:
            assert lines[i + 3] == f"  hint: {hint}", r.err
        return
    raise AssertionError(f"{message!r} not reported at {where}:\n{r.err}")


def count(r: Result) -> int:
    m = re.search(r"^(\d+) errors? found$", r.err, re.M)
    assert m, r.err
    return int(m.group(1))


def test_valid_manifest(tmp_path: Path) -> None:
    write(tmp_path / "m.yaml", manifest("a: {app: render, params: {frames: 1-4}}"))
    r = cli("validate", "m.yaml", cwd=tmp_path)
    assert r.code == 0, r.err
    assert r.out.strip() == "ok: 1 file(s), 3 document(s), 1 job(s), 1 task(s)"


def test_demo_manifest_is_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    r = cli("validate", str(root / "manifests" / "demo"))
    assert r.code == 0, r.err


# -- unknown keys and wrong types -----------------------------------------------------------------


def test_unknown_task_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = manifest("a:\n  command: echo hi\n  dependson: [b]\nb: {command: echo}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "dependson"),
        "unknown key 'dependson'",
        hint="did you mean 'dependsOn'?",
        text=text,
    )
    assert count(r) == 1


def test_misspelt_command_in_an_app(tmp_path: Path) -> None:
    text = APP.replace("  command:", "  comand:") + "---\n" + job("a: {command: 'true'}")
    r = validate(tmp_path, text)
    expect(r, "m.yaml:5:3", "unknown key 'comand'", hint="did you mean 'command'?", text=text)
    # the misspelt key says it all: no second problem for the command it leaves out
    assert count(r) == 1


def test_an_app_without_a_command_needs_a_kind_that_has_one(tmp_path: Path) -> None:
    """`command:` may be left out only where the App's kind has a default command (blender's
    is `blender`); a shell App without one is reported at its spec, saying what to add."""
    app = APP.replace("  command: render -o $<output> -F $<format> -f $<frames> -s $<seed>\n", "")
    assert "command" not in app
    text = app + "---\n" + job("a: {app: render, params: {frames: 1-4}}")
    r = validate(tmp_path, text)
    expect(
        r,
        "m.yaml:4:1",
        "missing required key 'command': kind 'shell' has no default command",
        hint="add 'command: ...' here, or set a kind that has a default command (blender)",
        text=text,
    )
    assert count(r) == 1
    # a kind that is not installed may well have a default: only the unknown kind is reported
    text = text.replace("spec:\n  params:", "spec:\n  kind: blendr\n  params:")
    r = validate(tmp_path, text)
    expect(r, at(text, "blendr"), "unknown task kind 'blendr'", hint="did you mean 'blender'?")
    assert count(r) == 1


def test_unknown_kind_and_top_level_key(tmp_path: Path) -> None:
    text = (
        "apiVersion: runner/v1\nkind: Jobb\nmetadata: {name: x}\nspec: {}\n---\n"
        "apiVersion: runner/v1\nkind: Cluster\nmetdata: {name: c}\nspec: {}\n"
    )
    r = validate(tmp_path, text)
    expect(r, "m.yaml:2:7", "unknown kind 'Jobb'", hint="did you mean 'Job'?", text=text)
    expect(r, "m.yaml:8:1", "unknown key 'metdata'", hint="did you mean 'metadata'?", text=text)


def test_wrong_type(tmp_path: Path) -> None:
    text = manifest('a:\n  command: echo\n  instances: "two"')
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, '"two"'),
        "spec.tasks.a.instances: expected an integer, got the string 'two'",
        text=text,
    )


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("instances: yes", "expected an integer, got the boolean true"),
        ("instances: 0", "greater than or equal to 1"),
        ("retries: 1.5", "expected an integer"),
        ("timeout: true", "expected a duration like '30s', '2h' or '1h30m', got a boolean"),
        ("timeout: 10 minutes", "'10 minutes' is not a duration"),
        ("timeout: .inf", "finite"),
        ("retryBackoff: 0s", "greater than zero"),
        ("env: {1BAD: x}", "'1BAD' is not a valid environment variable name"),
        ("env: {OK: [1]}", "expected a string, got a list"),
        ("dependsOn: b", "expected a list, got the string 'b'"),
    ],
)
def test_bad_task_settings(tmp_path: Path, setting: str, says: str) -> None:
    text = manifest(f"a:\n  command: echo\n  {setting}\nb: {{command: echo}}")
    r = validate(tmp_path, text)
    row = line_of(text, setting)
    assert re.search(rf"^m\.yaml:{row}:\d+: error: .*{re.escape(says)}", r.err, re.M), r.err
    assert count(r) == 1


def test_task_needs_app_or_command(tmp_path: Path) -> None:
    text = manifest("a: {instances: 2}\nb: {app: render, command: echo}")
    r = validate(tmp_path, text)
    expect(r, at(text, "{instances"), "a task needs either 'app: NAME' or 'command: ...'")
    expect(r, at(text, "{app: render,"), "a task takes 'app' or 'command', not both")


def test_bad_task_name_is_shown_at_the_name(tmp_path: Path) -> None:
    text = manifest("a b:\n  command: echo")
    r = validate(tmp_path, text)
    expect(r, at(text, "a b:"), "spec.tasks.a b: 'a b' is not a valid name", text=text)


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ('""', "the command is empty"),
        ("'   '", "the command is empty"),
        ("[]", "a command list starts with the program to run"),
        ("['', x]", "a command list starts with the program to run"),
    ],
)
def test_empty_commands(tmp_path: Path, command: str, says: str) -> None:
    text = manifest(f"a: {{command: {command}}}")
    r = validate(tmp_path, text)
    expect(r, at(text, command), says, text=text)


def test_bad_name(tmp_path: Path) -> None:
    text = manifest("a: {command: echo}").replace("{name: j}", "{name: 'my job'}")
    r = validate(tmp_path, text)
    expect(r, at(text, "'my job'"), "'my job' is not a valid name", text=text)


def test_missing_keys(tmp_path: Path) -> None:
    text = manifest("a: {command: echo}").replace("metadata: {name: farm}", "metadata: {}")
    text = text.replace("metadata: {name: j}\n", "")
    r = validate(tmp_path, text)
    expect(r, at(text, "metadata: {}"), "missing required key 'name'", text=text)
    expect(r, f"m.yaml:{line_of(text, 'kind: Job') - 1}:1", "missing required key 'metadata'")


def test_not_a_mapping_and_missing_api_version(tmp_path: Path) -> None:
    text = "- just\n- a list\n---\nkind: Job\nmetadata: {name: j}\nspec: {}\n"
    r = validate(tmp_path, text)
    expect(r, "m.yaml:1:1", "a manifest document must be a mapping", text=text)
    expect(r, "m.yaml:4:1", "missing 'apiVersion'", hint="add 'apiVersion: runner/v1'")


# -- names across documents -----------------------------------------------------------------------


def test_unknown_app_cluster_and_dependency(tmp_path: Path) -> None:
    text = manifest(
        "a: {app: rendr, params: {frames: 1}}\n"
        "b: {command: echo, dependsOn: [aa]}\n"
        "c: {command: echo, cluster: frm}\n"
        "d: {command: echo}\n"
        "e: {command: echo}",
        cluster="farn",
    )
    r = validate(tmp_path, text)
    expect(r, at(text, "farn"), "unknown cluster 'farn'", hint="did you mean 'farm'?", text=text)
    expect(r, at(text, "rendr"), "unknown app 'rendr'", hint="did you mean 'render'?", text=text)
    expect(r, at(text, "aa"), "task 'b' depends on unknown task 'aa'", hint="did you mean 'a'?")
    expect(r, at(text, "frm"), "unknown cluster 'frm'", hint="did you mean 'farm'?")
    # the job's cluster is reported once, not once per task that would use it
    assert r.err.count("unknown cluster 'farn'") == 1
    assert count(r) == 4


def test_an_invalid_app_or_cluster_is_not_also_unknown(tmp_path: Path) -> None:
    text = APP.replace("  params:", "  parms:").replace("slots: 2", "slots: -1") + "---\n"
    text += job("a: {app: render, params: {frames: 1}}")
    r = validate(tmp_path, text)
    expect(r, at(text, "parms"), "unknown key 'parms'", hint="did you mean 'params'?", text=text)
    expect(r, at(text, "-1"), "spec.slots: Input should be greater than or equal to 1", text=text)
    assert "unknown app" not in r.err and "unknown cluster" not in r.err
    assert count(r) == 2


def test_dependency_cycle_is_printed(tmp_path: Path) -> None:
    text = manifest(
        "a: {command: echo, dependsOn: [c]}\n"
        "b: {command: echo, dependsOn: [a]}\n"
        "c: {command: echo, dependsOn: [b]}\n"
        "d: {command: echo, dependsOn: [d]}"
    )
    r = validate(tmp_path, text)
    expect(r, at(text, "[c]"), "dependency cycle: a -> b -> c -> a", text=text)
    expect(r, at(text, "d]"), "task 'd' depends on itself", hint="remove it from dependsOn")
    assert count(r) == 2


def test_names_defined_twice(tmp_path: Path) -> None:
    text = manifest("a: {command: echo}") + "---\n" + job("b: {command: echo}")
    r = validate(tmp_path, text)
    first, second = (line_of(text, "metadata: {name: j}", n) for n in (0, 1))
    expect(r, f"m.yaml:{second}:18", "Job 'j' is defined twice", text=text)
    assert f"the first definition is at m.yaml:{first}" in r.err


# -- placeholders and parameters ------------------------------------------------------------------


def test_undeclared_placeholder_points_inside_the_command(tmp_path: Path) -> None:
    text = manifest('a:\n  command: echo $<greeting> "$<nme>"\n  params: {name: x}')
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "$<greeting>"),
        "placeholder '$<greeting>' is not declared by task 'a'",
        text=text,
    )
    expect(
        r,
        at(text, "$<nme>"),
        "placeholder '$<nme>' is not declared by task 'a'",
        hint="did you mean 'name'?",
    )


def test_placeholder_positions_in_folded_literal_and_list_commands(tmp_path: Path) -> None:
    text = manifest(
        "a:\n  command: >-\n    echo first\n    and $<one>\n"
        "b:\n  command: |\n    echo x\n      $$<lit> $<two>\n"
        "c:\n  command: [echo, 'it''s $<three>']"
    )
    r = validate(tmp_path, text)
    expect(r, at(text, "$<one>"), "'$<one>' is not declared by task 'a'", text=text)
    expect(r, at(text, "$<two>"), "'$<two>' is not declared by task 'b'", text=text)
    expect(r, at(text, "$<three>"), "'$<three>' is not declared by task 'c'", text=text)
    assert count(r) == 3


def test_app_placeholders_and_malformed_ones(tmp_path: Path) -> None:
    text = APP.replace("-s $<seed>", "-s $<seed> -t $<threads>") + "---\n"
    text += job("a: {command: echo $<ok}\nb: {command: echo $<1x>}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "$<threads>"),
        "placeholder '$<threads>' is not declared by app 'render'",
        text=text,
    )
    expect(r, at(text, "$<ok"), "unterminated placeholder '$<'", text=text)
    expect(r, at(text, "$<1x>"), "'$<1x>' is not a valid placeholder", text=text)


def test_placeholders_in_env(tmp_path: Path) -> None:
    text = manifest(
        "a:\n  command: echo\n  env: {WHO: $<task>, WHAT: $<what>}\nb: {command: echo}",
        env="  env: {SHARED: $<job>/$<where>}\n",
    )
    r = validate(tmp_path, text)
    expect(r, at(text, "$<what>"), "'$<what>' is not declared by task 'a'", text=text)
    expect(
        r,
        at(text, "$<where>"),
        "placeholder '$<where>' in the job's env has no value in task 'b'",
        hint="declare it in those tasks, or set this variable in each task's env",
        text=text,
    )
    assert count(r) == 2


def test_job_env_is_checked_once_against_every_task(tmp_path: Path) -> None:
    tasks = "\n".join(f"t{i}: {{command: echo}}" for i in range(6))
    tasks += "\nown: {command: echo, env: {SHARED: mine}}"
    tasks += "\nok: {command: echo $<frames>, params: {frames: 1}}"
    text = manifest(tasks, env="  env: {SHARED: $<frames>, BAD: $<oops}\n")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "$<frames>", line="SHARED"),
        "'$<frames>' in the job's env has no value in task 't0', 't1', 't2' and 3 more",
        text=text,
    )
    expect(r, at(text, "$<oops"), "unterminated placeholder '$<'", text=text)
    assert count(r) == 2


def test_param_used_by_the_app_env_without_a_default(tmp_path: Path) -> None:
    text = APP.replace("  params:\n", "  env: {LEVEL: $<level>}\n  params:\n").replace(
        "    scale:", "    level: {type: string}\n    scale:"
    )
    text += "---\n" + job(
        "a: {app: render, params: {frames: 1, level: high}}\n"
        "b: {app: render, params: {frames: 1}}\n"
        "c: {app: render, params: {frames: 1}, env: {LEVEL: own}}"
    )
    r = validate(tmp_path, text)
    expect(r, at(text, "b: {"), "task 'b' must set parameter 'level' of app 'render'", text=text)
    assert count(r) == 1


def test_names_that_would_make_a_placeholder_ambiguous(tmp_path: Path) -> None:
    text = APP.replace(
        "    scale:", "    task: {type: string, default: x}\n    output: {}\n    scale:"
    )
    text += "---\n" + job(
        "a: {command: echo $<job>, params: {job: 1}, outputs: {out: o, instance_id: x}}"
    )
    r = validate(tmp_path, text)
    expect(r, at(text, "task:"), "'task' is a built-in placeholder: $<task> is set by the runner")
    expect(
        r,
        at(text, "output:", line="outputs: {output"),
        "'output' is already declared in params: $<output> would be ambiguous",
        text=text,
    )
    expect(r, at(text, "job: 1"), "'job' is a built-in placeholder", hint="choose another name")
    expect(r, at(text, "instance_id"), "'instance_id' is a built-in placeholder", text=text)
    assert count(r) == 4


def test_missing_required_param(tmp_path: Path) -> None:
    text = manifest("a: {app: render}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "a: {app"),
        "task 'a' must set required parameter 'frames' of app 'render'",
        hint="add 'params: {frames: ...}' to the task",
        text=text,
    )


def test_param_used_by_the_command_without_a_default(tmp_path: Path) -> None:
    text = APP.replace("-s $<seed>", "-s $<seed> -q $<quality>").replace(
        "    scale:", "    quality: {type: int}\n    scale:"
    )
    text += "---\n" + job("a: {app: render, params: {frames: 1}}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "a: {app"),
        "task 'a' must set parameter 'quality' of app 'render': the app's command uses it",
        text=text,
    )


def test_bad_param_values(tmp_path: Path) -> None:
    text = manifest(
        "a: {app: render, params: {frames: 10-1}}\n"
        "b: {app: render, params: {frames: 1-x, format: GIF, scale: big}}\n"
        "c: {app: render, params: {frames: 1, seed: 5, sede: 5}}"
    )
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "10-1"),
        "parameter 'frames': range '10-1' runs backwards; write it as '1-10'",
        text=text,
    )
    expect(r, at(text, "1-x"), "parameter 'frames': '1-x' is not a frame or range")
    expect(r, at(text, "GIF"), "parameter 'format': 'GIF' is not one of PNG, JPEG")
    expect(r, at(text, "big"), "parameter 'scale': expected a number, got 'big'")
    expect(
        r,
        at(text, "seed: 5"),
        "parameter 'seed' of app 'render' is not overridable",
        hint="remove it here, or set 'overridable: true' in the app",
    )
    expect(r, at(text, "sede"), "app 'render' has no parameter 'sede'", hint="did you mean 'seed'?")
    # a bad value is one problem, not also a "must set required parameter"
    assert "must set" not in r.err
    assert count(r) == 6


def test_bad_param_declarations(tmp_path: Path) -> None:
    text = APP.replace(
        "    scale: {type: float, default: 1.0}",
        "    scale: {type: float, default: fast}\n    mode: {type: enum}\n    n: {type: integer}",
    )
    text += "---\n" + job("a: {command: echo}")
    r = validate(tmp_path, text)
    expect(r, at(text, "{type: float"), "default: expected a number, got 'fast'", text=text)
    expect(r, at(text, "{type: enum}"), "an enum parameter needs 'values: [A, B, ...]'")
    assert f"{at(text, 'integer')}: error: " in r.err


# -- YAML itself ----------------------------------------------------------------------------------


def test_duplicate_keys(tmp_path: Path) -> None:
    text = manifest("a: {command: echo one}\na: {command: echo two}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "a:", line="echo two"),
        "duplicate key 'a': the later value would silently win",
        hint="remove one of the two entries",
        text=text,
    )


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = manifest("a: {command: echo\nb: {command: echo}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, ": {command: echo}", line="b: {"),
        "invalid YAML: did not find expected ',' or '}'",
        hint="check indentation, colons and quotes near here",
        text=text,
    )


def test_bad_indentation(tmp_path: Path) -> None:
    text = manifest("a:\n  command: echo\n   retries: 2")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, ": 2", line="retries"),
        "invalid YAML: mapping values are not allowed",
        text=text,
    )


def test_tab_indentation(tmp_path: Path) -> None:
    text = manifest("a:\n\tcommand: echo")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "\tcommand"),
        "invalid YAML: found character that cannot start any token",
        hint="indent with spaces: YAML does not allow tabs there",
        text=text,
    )


def test_control_character(tmp_path: Path) -> None:
    text = manifest("a: {command: echo \x07}")
    r = validate(tmp_path, text)
    expect(
        r,
        at(text, "\x07"),
        "invalid YAML: the character U+0007 is not allowed in YAML",
        hint='remove it, or write it as "\\u0007" inside a double-quoted string',
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("!!bool maybe", "'maybe' is not a valid !!bool value"),
        ("!!timestamp soon", "'soon' is not a valid !!timestamp value"),
        ("!!seq echo", "the tag !!seq needs a list or mapping here"),
        ('"echo \\0"', "a value cannot contain a NUL character"),
        ("&c [*c]", "an alias refers to the value that contains it"),
    ],
)
def test_odd_yaml_values(tmp_path: Path, value: str, says: str) -> None:
    text = manifest(f"a:\n  command: {value}")
    r = validate(tmp_path, text)
    expect(r, at(text, value), says, text=text)


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = manifest(
        "a: &base {command: echo, retries: 2, timeout: 1m}\nb: {<<: *base, retries: 3}\nc: *base"
    )
    write(tmp_path / "m.yaml", text)
    r = cli("validate", "m.yaml", cwd=tmp_path)
    assert r.code == 0, r.err


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_bytes(b"kind: \xff\n")
    r = cli("validate", "m.yaml", cwd=tmp_path)
    assert r.code == 2
    assert "m.yaml: error: cannot read manifest" in r.err


# -- many problems at once, many files ------------------------------------------------------------


def test_every_problem_in_one_pass_in_file_order(tmp_path: Path) -> None:
    text = manifest(
        "c: {command: echo, dependsOn: [zz]}\n"
        "b: {command: echo $<nope>, dependsOn: [a]}\n"
        "a: {app: render, params: {frames: 5-1}}\n"
    )
    r = validate(tmp_path, text)
    assert r.err.endswith("\n3 errors found\n")
    wheres = re.findall(r"^(m\.yaml:\d+:\d+): error", r.err, re.M)
    assert wheres == [at(text, "zz"), at(text, "$<nope>"), at(text, "5-1")]


def test_directory_with_apps_and_jobs_in_different_files(tmp_path: Path) -> None:
    write(tmp_path / "repo" / "apps.yaml", APP)
    write(tmp_path / "repo" / "jobs" / "render.yml", job("a: {app: render, params: {frames: 1-3}}"))
    write(tmp_path / "repo" / ".hidden" / "broken.yaml", "not: [valid")
    write(tmp_path / "repo" / "notes.txt", "not a manifest")
    r = cli("validate", "repo", cwd=tmp_path)
    assert r.code == 0, r.err
    assert r.out.strip() == "ok: 2 file(s), 3 document(s), 1 job(s), 1 task(s)"
    # one of the files alone does not know the app and cluster the other defines
    text = (tmp_path / "repo" / "jobs" / "render.yml").read_text()
    alone = cli("validate", "repo/jobs/render.yml", cwd=tmp_path)
    assert alone.code == 2
    expect(alone, at(text, "farm", file="repo/jobs/render.yml"), "unknown cluster 'farm'")
    expect(alone, at(text, "render", file="repo/jobs/render.yml"), "unknown app 'render'")


def test_errors_across_files_name_each_file(tmp_path: Path) -> None:
    apps = write(tmp_path / "d" / "a.yaml", APP.replace("slots: 2", "slots: many")).read_text()
    jobs = job("a: {app: render, params: {frames: 1, bogus: 2}}\nb: {command: x}\nb: {command: y}")
    write(tmp_path / "d" / "b.yaml", jobs)
    r = cli("validate", "d", "--set", "a.frames=x", cwd=tmp_path)
    assert r.code == 2
    expect(r, at(apps, "many", file="d/a.yaml"), "expected an integer, got the string 'many'")
    expect(r, at(jobs, "bogus", file="d/b.yaml"), "app 'render' has no parameter 'bogus'")
    expect(r, at(jobs, "b:", line="command: y", file="d/b.yaml"), "duplicate key 'b'")
    # the command line first, then the files in the order they are read, top to bottom
    wheres = re.findall(r"^(\S+): error:", r.err, re.M)
    assert wheres == [
        "--set",
        at(apps, "many", file="d/a.yaml"),
        at(jobs, "bogus", file="d/b.yaml"),
        at(jobs, "b:", line="command: y", file="d/b.yaml"),
    ]


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = cli("validate", "nope.yaml", "empty", cwd=tmp_path)
    assert r.code == 2
    assert "nope.yaml: error: no such file or directory: 'nope.yaml'" in r.err
    assert "empty: error: no *.yaml or *.yml files in directory 'empty'" in r.err


def test_no_job(tmp_path: Path) -> None:
    r = validate(tmp_path, APP)
    assert "no Job in these manifests; nothing to run" in r.err


# -- output formats and flags ---------------------------------------------------------------------


def test_json_output_has_the_same_errors(tmp_path: Path) -> None:
    text = manifest("a: {app: rendr}\nb: {command: echo $<x>}")
    as_text = validate(tmp_path, text)
    r = cli("validate", "m.yaml", "--output", "json", cwd=tmp_path)
    assert r.code == 2
    assert r.err == ""
    errors = json.loads(r.out)["errors"]
    assert [f"m.yaml:{e['line']}:{e['column']}" for e in errors] == [
        at(text, "rendr"),
        at(text, "$<x>"),
    ]
    assert errors[0] == {
        "file": "m.yaml",
        "line": line_of(text, "rendr"),
        "column": int(at(text, "rendr").rsplit(":", 1)[1]),
        "message": "unknown app 'rendr'",
        "hint": "did you mean 'render'?",
    }
    for e in errors:
        assert f"{e['file']}:{e['line']}:{e['column']}: error: {e['message']}" in as_text.err


def test_json_output_when_valid(tmp_path: Path) -> None:
    write(tmp_path / "m.yaml", manifest("a: {app: render, params: {frames: 1}}"))
    r = cli("validate", "m.yaml", "-o", "json", cwd=tmp_path)
    assert r.code == 0
    assert json.loads(r.out) == {"errors": [], "jobs": ["j"], "tasks": 1}


def test_debug_shows_a_traceback(tmp_path: Path) -> None:
    write(tmp_path / "m.yaml", manifest("a: {app: rendr}"))
    plain = run(["validate", "m.yaml"], cwd=tmp_path)
    assert plain.code == 2
    assert "Traceback" not in plain.err and "unknown app 'rendr'" in plain.err
    debug = run(["validate", "m.yaml", "--debug"], cwd=tmp_path)
    assert debug.code != 0
    assert "Traceback" in debug.err and "UserError" in debug.err


# -- --set ----------------------------------------------------------------------------------------


def test_set_overrides_are_checked(tmp_path: Path) -> None:
    write(
        tmp_path / "m.yaml", manifest("a: {app: render, params: {frames: 1}}\nb: {command: echo}")
    )
    ok = cli("validate", "m.yaml", "--set", "a.frames=1-20", "--set", "a.scale=0.5", cwd=tmp_path)
    assert ok.code == 0, ok.err
    r = cli(
        "validate",
        "m.yaml",
        "--set",
        "a.scale=big",
        "--set",
        "a.frames=9-1",
        "--set",
        "a.sclae=1",
        "--set",
        "a.seed=3",
        "--set",
        "b.x=1",
        "--set",
        "zz.frames=1",
        "--set",
        "nonsense",
        cwd=tmp_path,
    )
    assert r.code == 2
    assert "Traceback" not in r.err
    for says in [
        "--set: error: --set a.scale: expected a number, got 'big'",
        "--set: error: --set a.frames: range '9-1' runs backwards",
        "--set: error: --set a.sclae: app 'render' has no parameter 'sclae'",
        "--set: error: --set a.seed: parameter 'seed' is not overridable",
        "--set: error: --set b.x: task 'b' has no parameter 'x'",
        "--set: error: --set zz.frames: no task 'zz' in any job",
        "--set: error: --set 'nonsense': expected TASK.PARAM=VALUE",
    ]:
        assert says in r.err
    assert "hint: did you mean 'scale'?" in r.err
    assert count(r) == 7


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("a.seed=" + "1" * 5000, "--set a.seed: parameter 'seed' is not overridable"),
        ("a.frames=" + "1" * 5000, "is not a frame number"),
        ("a.scale=" + "9" * 5000, "expected a finite number"),
        ("a.scale=nan", "expected a finite number, got 'nan'"),
        ("a.format=png", "'png' is not one of PNG, JPEG"),
    ],
)
def test_set_values_that_do_not_fit(tmp_path: Path, item: str, says: str) -> None:
    write(tmp_path / "m.yaml", manifest("a: {app: render, params: {frames: 1}}"))
    r = cli("validate", "m.yaml", "--set", item, cwd=tmp_path)
    assert r.code == 2, r.err
    assert says in r.err
    assert "internal error" not in r.err


def test_set_with_a_job_prefix_and_an_ambiguous_task(tmp_path: Path) -> None:
    other = job("a: {command: echo $<n>, params: {n: 1}}").replace("{name: j}", "{name: k}")
    write(tmp_path / "m.yaml", manifest("a: {app: render, params: {frames: 1}}") + "---\n" + other)
    r = cli("validate", "m.yaml", "--set", "a.frames=2", cwd=tmp_path)
    assert r.code == 2
    assert "task 'a' is in several jobs (j, k)" in r.err
    assert "hint: write JOB/TASK.PARAM=VALUE" in r.err
    ok = cli("validate", "m.yaml", "--set", "j/a.frames=2", "--set", "k/a.n=5", cwd=tmp_path)
    assert ok.code == 0, ok.err


def test_plan_reports_the_same_problems(tmp_path: Path) -> None:
    text = manifest("a: {app: rendr}")
    write(tmp_path / "m.yaml", text)
    r = cli("plan", "m.yaml", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert r.code == 2
    expect(r, at(text, "rendr"), "unknown app 'rendr'", text=text)
    assert not (tmp_path / "state").exists()


def test_a_required_param_no_task_may_set_is_reported_on_the_app(tmp_path: Path) -> None:
    m = write(
        tmp_path / "m.yaml",
        """
        apiVersion: runner/v1
        kind: App
        metadata: {name: a}
        spec:
          command: echo $<x>
          params:
            x: {type: string, required: true, overridable: false}
        """,
    )
    r = cli("validate", str(m))
    assert r.code == 2
    assert "can never have a value" in r.err
    assert "m.yaml:7:" in r.err


def test_valid_tasks_of_an_invalid_job_are_checked_in_the_same_pass(tmp_path: Path) -> None:
    m = write(
        tmp_path / "m.yaml",
        """
        apiVersion: runner/v1
        kind: Job
        metadata: {name: j}
        spec:
          tasks:
            t1: {comand: echo}
            t2: {command: 'echo $<undeclared>', dependsOn: [t1]}
            t3: {app: nosuchapp}
            t5: {command: y, dependsOn: [t6]}
            t6: {command: z, dependsOn: [t5]}
        """,
    )
    r = cli("validate", str(m))
    assert r.code == 2
    assert "unknown key 'comand'" in r.err
    assert "placeholder '$<undeclared>' is not declared" in r.err
    assert "unknown app 'nosuchapp'" in r.err
    assert "dependency cycle: t5 -> t6 -> t5" in r.err
    assert "unknown task 't1'" not in r.err  # t1 exists, it is only invalid
    assert "4 errors found" in r.err
