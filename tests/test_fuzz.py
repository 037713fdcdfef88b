"""Property-based fuzzing of manifests: whatever a user writes, `runner` answers with exit 0 or 2.

A valid manifest (App, Cluster and Job in one file) is mutated at random, both as data (keys
deleted, values of the wrong type, unknown keys, duplicated tasks, renamed references) and as
text (characters inserted, deleted or replaced, lines duplicated, the file cut short). Each
mutant goes through `runner validate` and `runner plan` in-process; a traceback or an
"internal error" is a bug in runner, never in the manifest.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Result, cli

BASE = """\
apiVersion: runner/v1
kind: App
metadata: {name: render, description: renders frames}
spec:
  command: render -i $<input>/$<scene> -o $<output> -F $<format> -f $<frames> -q $<quality>
  env: {THREADS: 2, MODE: fast}
  params:
    scene: {type: path, required: true, description: the scene file}
    frames: {type: frames, required: true}
    format: {type: enum, values: [PNG, JPEG], default: PNG}
    quality: {type: float, default: 0.9}
    verbose: {type: bool, default: false}
    seed: {type: int, default: 7, overridable: false}
    bucket: {type: uri, default: "oss://demo/out/"}
    label: {type: string, default: "####.png"}
  inputs: {input: {path: /work/input}}
  outputs: {output: {path: /work/output}}
  timeout: 2h
  retries: 1
  retryOn: [1, 137]
---
apiVersion: runner/v1
kind: Cluster
metadata: {name: farm}
spec: {executor: local, slots: 2, settings: {nice: 5}}
---
apiVersion: runner/v1
kind: Job
metadata: {name: splash, labels: {team: art}}
spec:
  cluster: farm
  env: {PROJECT: splash}
  tasks:
    render:
      app: render
      instances: 2
      params: {scene: splash.blend, frames: 1-4, format: JPEG}
      inputs: {input: data/}
      outputs: {output: out/frames}
      timeout: 30m
      retries: 2
      retryBackoff: 1s
    sheet:
      dependsOn: [render]
      command: [montage, "$<frames>/*.png", "$<sheet>", "$$<literal"]
      params: {count: 4}
      inputs: {frames: out/frames}
      outputs: {sheet: out/sheet}
      env: {TASK: $<task>}
      workdir: out
    notify:
      dependsOn: [sheet, render]
      command: echo "done $<job> $<instance_id>/$<instance_count>" > $<log>/done.txt
      outputs: {log: out/log}
      cluster: farm
"""

KEYS = [
    "apiVersion", "kind", "metadata", "name", "spec", "command", "params", "type", "default",
    "required", "values", "overridable", "description", "inputs", "outputs", "path", "instances",
    "timeout", "retries", "retryOn", "retryBackoff", "dependsOn", "cluster", "tasks", "env",
    "workdir", "app", "logs", "executor", "slots", "queue", "settings", "labels", "<<",
]  # fmt: skip
WORDS = [
    "render", "farm", "splash", "sheet", "notify", "App", "Job", "Cluster", "runner/v1", "local",
    "shell", "frames", "1-10", "5-1", "1,3,5-10", "1..3", "2h", "0s", "nan", "-inf", "1e999",
    "$<", "$<frames>", "$<nope>", "$$<x>", "$<a b>", "oss://b/p/", "file:///tmp", "", " ",
    "~", "null", "yes", "PNG", "gif", "x\x00y", "/nonexistent/in", "é✓", "a" * 300,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=3),
    ),
    max_leaves=6,
)

_SCRATCH: list[Path] = []  # one directory for the module; @given and tmp_path mix badly


@pytest.fixture(scope="module", autouse=True)
def _scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    _SCRATCH.append(tmp_path_factory.mktemp("fuzz"))
    yield
    _SCRATCH.pop()


def _write(text: str) -> Path:
    """`text` as the manifest of this module's scratch directory (rewritten for every case)."""
    path = _SCRATCH[-1] / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `node` (the root included)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _mutate(docs: list[Any], data: st.DataObject) -> None:
    """Apply one random structural change to the parsed documents, in place."""
    paths = [p for p in _paths(docs) if p]
    if not paths:
        docs.append(data.draw(values, label="document"))
        return
    path = data.draw(st.sampled_from(paths), label="path")
    parent, last = _get(docs, path[:-1]), path[-1]
    op = data.draw(
        st.sampled_from(["delete", "replace", "tweak", "insert", "duplicate", "rename", "swap"]),
        label="op",
    )
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = data.draw(values, label="value")
    elif op == "tweak":  # same type, other value: more mutants get past the schema to the plan
        parent[last] = data.draw(_same_type(parent[last]), label="value")
    elif op == "insert":
        target = parent[last] if isinstance(parent[last], dict) else parent
        if isinstance(target, dict):
            key = data.draw(st.one_of(st.sampled_from(KEYS), scalars), label="key")
            if isinstance(key, float) and math.isnan(key):
                key = "nan"
            target[key] = data.draw(values, label="value")
        else:
            target.insert(data.draw(st.integers(0, len(target))), data.draw(values))
    elif op == "duplicate":
        job = docs[-1] if docs and isinstance(docs[-1], dict) else {}
        spec = job.get("spec")
        tasks = spec.get("tasks") if isinstance(spec, dict) else None
        if isinstance(tasks, dict) and tasks:
            name = data.draw(st.sampled_from(sorted(map(str, tasks))), label="task")
            new = data.draw(st.sampled_from([f"{name}2", "render", "sheet", "x"]), label="as")
            tasks[new] = copy.deepcopy(tasks.get(name))
        else:
            parent[last] = copy.deepcopy(parent)
    elif op == "rename":
        if isinstance(parent, dict):
            new_key = data.draw(st.one_of(st.sampled_from(KEYS + WORDS), st.text(max_size=8)))
            parent[new_key] = parent.pop(last)
        else:
            parent[last] = data.draw(st.sampled_from(WORDS), label="name")
    else:
        other = data.draw(st.sampled_from(paths), label="other")
        if other[: len(path)] != path and path[: len(other)] != other:
            a, b = _get(docs, path), _get(docs, other)
            parent[last] = copy.deepcopy(b)
            _get(docs, other[:-1])[other[-1]] = copy.deepcopy(a)


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same YAML type as `value`."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        # no huge valid counts: planning 100,000 instances proves nothing here but takes time
        return st.one_of(
            st.integers(-3, 10), st.integers(min_value=100_001), st.integers(max_value=-1)
        )
    if isinstance(value, float):
        return st.floats()
    if isinstance(value, str):
        return st.one_of(st.sampled_from(WORDS), st.text(max_size=10), st.just(value + value))
    if isinstance(value, list):
        return st.lists(st.one_of(scalars, st.sampled_from(value or [None])), max_size=4)
    if isinstance(value, dict):
        return st.dictionaries(st.sampled_from(WORDS + KEYS), scalars, max_size=3)
    return scalars


def _text_mutate(text: str, data: st.DataObject) -> str:
    """Apply one random textual change."""
    op = data.draw(st.sampled_from(["insert", "delete", "replace", "truncate", "line", "indent"]))
    pos = data.draw(st.integers(0, max(len(text) - 1, 0)), label="pos")
    if op == "insert":
        piece = data.draw(
            st.one_of(st.sampled_from(list(":-[]{},'\"#&*!|>%@`\t\n ")), st.text(max_size=4))
        )
        return text[:pos] + piece + text[pos:]
    if op == "delete":
        n = data.draw(st.integers(1, 20), label="n")
        return text[:pos] + text[pos + n :]
    if op == "replace":
        return text[:pos] + data.draw(st.characters(codec="utf-8"), label="char") + text[pos + 1 :]
    if op == "truncate":
        return text[:pos]
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    if op == "line":
        lines.insert(i, lines[data.draw(st.integers(0, len(lines) - 1))])
    else:
        lines[i] = data.draw(st.sampled_from(["", " ", "  ", "\t"])) + lines[i]
    return "\n".join(lines)


SETS = [
    "render.frames=2-8", "render.quality=0.5", "render.seed=3", "render.format=GIF",
    "render.verbose=maybe", "sheet.count=9", "sheet.nope=1", "nope.x=1", "splash/render.frames=1",
    "render.frames=9-1", "render", "=", ".=", "render.=x", "/x.y=z",
]  # fmt: skip


def _check(text: str, sets: Sequence[str] = ()) -> None:
    """`validate` and `plan` on `text` end with exit 0 or 2 and never a traceback."""
    manifest = _write(text)
    state = manifest.parent / "state"
    flags = [a for s in sets for a in ("--set", s)]
    results: list[Result] = [
        cli("validate", str(manifest), *flags),
        cli("validate", str(manifest), *flags, "--output", "json"),
        cli("plan", str(manifest), "--state-dir", str(state), *flags),
    ]
    for r in results:
        shown = r.out + r.err
        assert r.code in (0, 2), f"exit {r.code} for manifest:\n{text}\n---\n{shown}"
        assert "Traceback" not in shown, shown
        assert "internal error" not in shown, f"{shown}\nmanifest:\n{text}"
    text_out, json_out = results[0], results[1]
    assert text_out.code == json_out.code
    if json_out.code == 2 and json_out.out.startswith("{"):
        # the same problems either way (usage errors from the flag parser are text only)
        errors = json.loads(json_out.out)["errors"]
        assert f"\n{len(errors)} error{'s' if len(errors) != 1 else ''} found" in text_out.err


def _fuzz(examples: int) -> settings:
    """Hypothesis settings for a fuzz test of `examples` manifests."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def test_base_manifest_is_valid() -> None:
    r = cli("validate", str(_write(BASE)))
    assert r.code == 0, r.err
    assert "1 job(s), 3 task(s)" in r.out


@_fuzz(800)
@given(st.data())
def test_structural_mutations_never_crash(data: st.DataObject) -> None:
    docs = list(yaml.safe_load_all(BASE))
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        _mutate(docs, data)
    sets = data.draw(
        st.lists(
            st.one_of(st.sampled_from(SETS), st.text(max_size=12).filter(lambda t: t != "--debug")),
            max_size=2,
        )
    )
    _check(yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False), sets)


@_fuzz(800)
@given(st.data())
def test_textual_mutations_never_crash(data: st.DataObject) -> None:
    text = BASE
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        text = _text_mutate(text, data)
    _check(text)


@_fuzz(300)
@given(st.data())
def test_mixed_mutations_never_crash(data: st.DataObject) -> None:
    docs = list(yaml.safe_load_all(BASE))
    _mutate(docs, data)
    text = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=data.draw(st.booleans()))
    _check(_text_mutate(text, data))


# -- well-formed manifests ------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)
plain_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=15).filter(
    lambda t: "$<" not in t and not t.endswith("$")
)


@st.composite
def frame_specs(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        a = draw(st.integers(-5, 50))
        b = draw(st.integers(a, a + 20))
        parts.append(f"{a}-{b}" if b != a else str(a))
    return ",".join(parts)


@st.composite
def good_manifests(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, int]]:
    """A Job (with App and Cluster) that must validate, and each task's instance count."""
    task_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    tasks: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for i, name in enumerate(task_names):
        task: dict[str, Any] = {}
        deps = draw(st.lists(st.sampled_from(task_names[:i]), unique=True)) if i else []
        if deps:
            task["dependsOn"] = deps
        if draw(st.booleans()):
            task["app"] = "render"
            params: dict[str, Any] = {
                "scene": draw(plain_text.filter(bool)),
                "frames": draw(frame_specs()),
            }
            if draw(st.booleans()):
                params["format"] = draw(st.sampled_from(["PNG", "JPEG"]))
            if draw(st.booleans()):
                params["quality"] = draw(st.floats(allow_nan=False, allow_infinity=False))
            if draw(st.booleans()):
                params["label"] = draw(plain_text)
            task["params"] = params
            task["inputs"] = {"input": draw(st.sampled_from(["data/", "file:///tmp/in/", "in"]))}
            task["outputs"] = {"output": "out/" + name}
        else:
            program = draw(st.sampled_from(["echo", "printf", "true", "/bin/echo"]))
            # a placeholder after a backtick or in a here-document is refused (no quoting is
            # safe there), so words of a well-formed command have neither
            shell_word = plain_text.filter(lambda t: "`" not in t and "<<" not in t)
            words = [program, *draw(st.lists(shell_word, max_size=4))]
            used = draw(st.lists(st.sampled_from(["instance_id", "task", "job", "n"]), max_size=3))
            words += [f"$<{u}>" for u in used]
            task["command"] = " ".join(words) if draw(st.booleans()) else words
            task["params"] = {"n": draw(st.one_of(st.integers(), plain_text, st.booleans()))}
        n = draw(st.integers(1, 5))
        counts[name] = n
        task["instances"] = n
        if draw(st.booleans()):
            task["timeout"] = draw(st.sampled_from(["30s", "2h", "1h30m", 90, 0.5]))
        if draw(st.booleans()):
            task["env"] = {"VALUE": draw(plain_text)}
        tasks[name] = task
    docs = list(yaml.safe_load_all(BASE))
    docs[2]["spec"]["tasks"] = tasks
    return {"docs": docs}, counts


@_fuzz(250)
@given(good_manifests())
def test_well_formed_manifests_validate_and_plan_every_instance(
    case: tuple[dict[str, Any], dict[str, int]],
) -> None:
    manifest, counts = case
    text = yaml.safe_dump_all(manifest["docs"], allow_unicode=True)
    path = _write(text)
    r = cli("validate", str(path))
    assert r.code == 0, f"{r.err}\n{text}"
    plan = cli("plan", str(path), "--state-dir", str(path.parent / "state"), "-o", "json")
    assert plan.code == 0, plan.err
    (job,) = json.loads(plan.out)["jobs"]
    planned = {t["task"]: len(t["instances"]) for t in job["tasks"]}
    assert planned == counts
    assert job["to_run"] == job["total"] == sum(counts.values())
    order = [t["task"] for t in job["tasks"]]
    deps = manifest["docs"][2]["spec"]["tasks"]
    for name in order:
        for dep in deps[name].get("dependsOn", []):
            assert order.index(dep) < order.index(name)
