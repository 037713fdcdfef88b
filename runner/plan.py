"""Reconciling, like terraform: for every instance, run or skip, and why.

Each instance has a fingerprint made of named parts (kind, app, command, env, each param, each
declared input file's size and mtime, ...). An instance is skipped only when its latest outcome
succeeded with the same fingerprint and nothing upstream of it runs; otherwise the reason names
what changed or what happened last time. Reads state, never writes it (`runner.runs` records a
plan when a run starts).

What the plan derives is the plan's, never written back onto the model: `TaskPlan.task` is the
model's task with remote inputs and outputs bound to local paths (`sources`, `sinks`), the
instance count its kind worked out and its image's ID. The engine, the kinds and the state
records read that task; the bundle stays as the loader made it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from runner import plugins
from runner.containers import resolve as resolve_image
from runner.contracts import InstanceSpec, Kind, Task
from runner.errors import UserError
from runner.manifest.diagnostics import did_you_mean
from runner.manifest.kinds import kind_plugin
from runner.manifest.template import render
from runner.model import Bundle, Job
from runner.state import CurrentInstance, State
from runner.stores import (
    NoSuchInput,
    StoreError,
    cache_path,
    check_readable,
    check_writable,
    input_signature,
    is_remote,
    split_glob,
)

__all__ = [
    "InstancePlan",
    "JobPlan",
    "TaskPlan",
    "instance_env",
    "make_plan",
    "refresh_fingerprints",
]

Action = Literal["run", "skip"]


@dataclass
class InstancePlan:
    """One instance: what it runs, its fingerprint, and the decision."""

    spec: InstanceSpec
    fingerprint: str
    parts: dict[str, str]
    action: Action
    reason: str


@dataclass
class TaskPlan:
    """A task's instances and its overall decision. `task` is the plan's copy of the model's
    task, with what the plan derived (bound inputs and outputs, instance count, image ID)."""

    task: Task
    kind: Kind
    instances: list[InstancePlan]

    @property
    def to_run(self) -> int:
        """How many instances will run."""
        return sum(1 for i in self.instances if i.action == "run")

    @property
    def action(self) -> Action:
        """`run` when any instance runs."""
        return "run" if self.to_run else "skip"


@dataclass
class JobPlan:
    """A job's tasks in dependency order."""

    job: Job
    tasks: dict[str, TaskPlan] = field(default_factory=dict)

    @property
    def to_run(self) -> int:
        """How many instances of the job will run."""
        return sum(t.to_run for t in self.tasks.values())

    @property
    def total(self) -> int:
        """How many instances the job has."""
        return sum(len(t.instances) for t in self.tasks.values())


def instance_env(task: Task, index: int) -> dict[str, str]:
    """Variables every instance sees, under runner's and BatchCompute's names."""
    return {
        "RUNNER_JOB": task.job,
        "RUNNER_TASK": task.name,
        "RUNNER_INSTANCE_ID": str(index),
        "RUNNER_INSTANCE_COUNT": str(task.instances),
        "BATCH_COMPUTE_DAG_INSTANCE_ID": str(index),
        "BATCH_COMPUTE_DAG_INSTANCE_COUNT": str(task.instances),
    }


def _h(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _input_signature(path: str) -> str:
    """Size and mtime of a local input (every file below it for a directory)."""
    if "://" in path:
        return path  # remote inputs are fingerprinted by the store that stages them
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return "missing"
    if not p.is_dir():
        return f"{st.st_size}:{st.st_mtime_ns}"
    entries = []
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for name in sorted(files):
            f = os.path.join(root, name)
            try:
                s = os.stat(f)
            except OSError:
                continue
            entries.append(f"{os.path.relpath(f, p)}:{s.st_size}:{s.st_mtime_ns}")
    return _h(entries)


def _input_part(task: Task, name: str, path: str, made_by: str | None = None) -> str:
    """An input's fingerprint: size and mtime of local files, object versions of remote ones.
    A remote input that an upstream task (`made_by`) writes may not exist yet: it is pending
    until that task has run."""
    if not path:
        return ""
    uri = task.sources.get(name)
    if uri is None:
        return _h(_input_signature(path))
    try:
        return _h("remote " + input_signature(uri))
    except NoSuchInput:
        if made_by is None:
            raise UserError(
                f"task {task.name!r} ({task.file}), input {name!r}: {uri}: no such object or "
                "prefix; check the URI, or make it an output of a task this one dependsOn"
            ) from None
        return _h(f"pending: written by {made_by}")
    except StoreError as e:
        raise UserError(f"task {task.name!r} ({task.file}), input {name!r}: {e}") from None


def _writer(uri: str, task: Task, tasks: dict[str, TaskPlan]) -> str | None:
    """The upstream task (direct or not) with an output at, below or above `uri`, if any."""
    seen: set[str] = set()
    todo = list(task.depends_on)
    while todo:
        name = todo.pop()
        if name in seen or name not in tasks:
            continue
        seen.add(name)
        up = tasks[name].task
        for sink in up.sinks.values():
            prefix = split_glob(sink)[0].rstrip("/") + "/"
            mine = uri.rstrip("/") + "/"
            if mine.startswith(prefix) or prefix.startswith(mine):
                return name
        todo.extend(up.depends_on)
    return None


def bind_remote_inputs(task: Task, cache_dir: Path) -> Task:
    """Remote inputs are staged into the cache; the command sees the local copy's path.
    Returns `task` itself when it has none, else a copy with them bound."""
    sources = {n: v for n, v in task.inputs.items() if v and is_remote(v)}
    if not sources:
        return task
    inputs = {
        n: str(cache_path(v, cache_dir)) if n in sources else v for n, v in task.inputs.items()
    }
    return replace(task, inputs=inputs, sources={**task.sources, **sources})


def bind_remote_outputs(task: Task, stage_dir: Path) -> Task:
    """Remote outputs are written locally first: the command sees a local folder.
    Returns `task` itself when it has none, else a copy with them bound."""
    sinks = {n: v for n, v in task.outputs.items() if v and is_remote(v)}
    if not sinks:
        return task
    here = stage_dir / task.job / task.name
    outputs = {
        n: str(cache_path(split_glob(v)[0], here)) if n in sinks else v
        for n, v in task.outputs.items()
    }
    return replace(task, outputs=outputs, sinks={**task.sinks, **sinks})


def per_instance_outputs(task: Task, spec: InstanceSpec) -> None:
    """Each instance writes a remote output into a folder of its own (`.../out/3`), so that
    what one instance uploads is its own, complete work and nobody else's."""
    for name in task.sinks:
        base = task.outputs[name]
        mine = f"{base}/{spec.index}"
        spec.argv[:] = [a.replace(base, mine) for a in spec.argv]
        for k, v in spec.env.items():
            spec.env[k] = v.replace(base, mine)


def _task_parts(task: Task, tasks: dict[str, TaskPlan]) -> dict[str, str]:
    parts = {
        "kind": task.kind,
        "app": task.app or "",
        "workdir": str(task.workdir),
        "instances": str(task.instances),
    }
    for name, value in task.params.items():
        parts[f"param {name}"] = _h(repr(value))
    for name, path in task.inputs.items():
        uri = task.sources.get(name)
        writer = _writer(uri, task, tasks) if uri else None
        parts[f"input {name}"] = _input_part(task, name, path, writer)
    for name, path in task.outputs.items():
        parts[f"output {name}"] = _h(task.sinks.get(name, path))
    return parts


def _fingerprint(base: dict[str, str], spec: InstanceSpec) -> tuple[str, dict[str, str]]:
    parts = dict(base)
    parts["command"] = _h(spec.argv)
    parts["env"] = _h(spec.env)
    for k, v in spec.fingerprint_extra.items():
        parts[f"extra {k}"] = _h(v)
    return _h(parts), parts


def _changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    keys = [k for k in new if old.get(k) != new[k]]
    keys += [k for k in old if k not in new]
    return keys


def _decide(
    prev: CurrentInstance | None, fp: str, parts: dict[str, str], upstream: str | None
) -> tuple[Action, str]:
    """Run or skip, and why; `upstream` is a dependency that runs in this apply, if any."""
    if prev is None:
        return "run", "new: never ran"
    if prev.state != "succeeded":
        return "run", f"{prev.state.replace('_', ' ')} in run {prev.run_id}"
    what = _changed(prev.parts, parts) if prev.fingerprint != fp else []
    if upstream is not None and all(w.startswith("upstream ") for w in what):
        return "run", f"upstream task {upstream!r} runs"
    if prev.fingerprint != fp:
        said = [
            f"image {prev.parts.get('image') or 'none'} -> {parts.get('image') or 'none'}"
            if w == "image" else w
            for w in what or ["fingerprint"]
        ]  # fmt: skip
        return "run", f"changed since run {prev.run_id}: {', '.join(said)}"
    return "skip", f"up to date (succeeded in run {prev.run_id})"


def _upstream_parts(task: Task, tasks: dict[str, TaskPlan]) -> dict[str, str]:
    """What each dependency was made of: a task is stale when its upstream changed since it
    last ran, even if the upstream ran without it (say, while it was commented out)."""
    return {
        f"upstream {d}": _h([ip.fingerprint for ip in tasks[d].instances])
        for d in task.depends_on
        if d in tasks
    }


def refresh_fingerprints(
    tp: TaskPlan, tasks: dict[str, TaskPlan], remote: dict[str, str] | None = None
) -> None:
    """Fingerprint inputs and upstream tasks as they are when the task starts (upstream work
    may have written inputs and changed since the plan), so the next plan compares against
    what this run really used. `remote` holds the signatures staging saw for remote inputs
    (the listing it fetched by); remote inputs not in it keep the plan's fingerprint."""
    remote = remote or {}
    fresh = {
        f"input {n}": (_h("remote " + remote[n]) if n in remote else _input_part(tp.task, n, p))
        for n, p in tp.task.inputs.items()
        if n not in tp.task.sources or n in remote
    }
    fresh.update(_upstream_parts(tp.task, tasks))
    extra: dict[int, dict[str, str]] = {}
    if tp.task.depends_on and any(ip.spec.fingerprint_extra for ip in tp.instances):
        # what the kind fingerprints itself (a workflow's input files) may have been written
        # upstream since the plan, too (kinds without such parts are not expanded again)
        extra = {
            s.index: {f"extra {k}": _h(v) for k, v in s.fingerprint_extra.items()}
            for s in tp.kind.expand(task=tp.task)
        }
    if not fresh and not extra:
        return
    for ip in tp.instances:
        now = {**fresh, **extra.get(ip.spec.index, {})}
        if ip.action == "run" and any(ip.parts.get(k) != v for k, v in now.items()):
            ip.parts.update(now)
            ip.fingerprint = _h(ip.parts)


def load_kind(name: str) -> Kind:
    """The kind plugin `name`: the instance validation already made (one per process)."""
    kind: Kind | None = kind_plugin(name)
    if kind is None:
        kind = plugins.load("kind", name)()  # not installed: a UserError that says so
    return kind


def make_plan(
    bundle: Bundle,
    state: State | None,
    *,
    force: bool = False,
    rerun: Collection[str] = (),
    jobs: Iterable[str] | None = None,
) -> list[JobPlan]:
    """Decide run or skip for every instance of every (selected) job."""
    selected = list(jobs) if jobs is not None else list(bundle.jobs)
    all_tasks = {t for j in bundle.jobs.values() for t in j.tasks}
    qualified = {f"{j.name}/{t}" for j in bundle.jobs.values() for t in j.tasks}
    # TASK names a task of any job; JOB/TASK must name a task of that very job
    unknown = [r for r in rerun if r not in (qualified if "/" in r else all_tasks)]
    if unknown:
        options = qualified if "/" in unknown[0] else all_tasks
        raise UserError(
            f"--rerun {unknown[0]!r}: no such task"
            + (f"; {h}" if (h := did_you_mean(unknown[0], options)) else "")
        )
    cache_dir = (state.directory if state is not None else Path(".runner")) / "cache"
    images: dict[tuple[str, str, str], str] = {}  # each image is looked up once a plan
    plans = []
    for job_name in selected:
        job = bundle.jobs[job_name]
        current = state.current(job_name) if state is not None else {}
        jp = JobPlan(job)
        running_tasks: set[str] = set()
        for tname in job.order:
            # the plan's copy of the task (the model's stays as loaded): what it derives
            task = job.tasks[tname]
            kind = load_kind(task.kind)
            task = bind_remote_inputs(task, cache_dir)
            task = bind_remote_outputs(task, cache_dir.parent / "outputs")
            specs = kind.expand(task=task)
            for spec in specs if task.sinks else ():
                per_instance_outputs(task, spec)
            if len(specs) != task.instances:  # a kind may derive the count (blender's chunk)
                task = replace(task, instances=len(specs))
            base = _task_parts(task, jp.tasks)
            base.update(_upstream_parts(task, jp.tasks))
            if task.image is not None:
                # what the command runs in: a new tag, or the tag on new content, reruns it
                image_id = resolve_image(task, images)
                task = replace(task, image_id=image_id)
                base["image"] = f"{task.image} {image_id.removeprefix('sha256:')[:12]}"
                if task.run_args:
                    base["run args"] = _h(task.run_args)
            upstream = next((d for d in task.depends_on if d in running_tasks), None)
            requested = tname in rerun or f"{job_name}/{tname}" in rerun
            instances = []
            if "$<" in str(task.workdir):
                # a per-instance working directory: `workdir: scratch/$<instance_id>`
                values = task.values()
                specs = [
                    replace(
                        s,
                        workdir=Path(
                            render(
                                str(task.workdir),
                                {**values, "instance_id": str(s.index)},
                                quote=False,
                            )
                        ),
                    )
                    for s in specs
                ]
            for spec in specs:
                spec.env.update(instance_env(task, spec.index))
                fp, parts = _fingerprint(base, spec)
                prev = current.get((tname, spec.index))
                action, reason = _decide(prev, fp, parts, upstream)
                if action == "skip" or reason.startswith("upstream task"):
                    if force:
                        action, reason = "run", "forced (--force)"
                    elif requested:
                        action, reason = "run", "requested (--rerun)"
                instances.append(InstancePlan(spec, fp, parts, action, reason))
            tp = TaskPlan(task, kind, instances)
            if tp.action == "run":
                # before anything runs: every input that exists already must be readable...
                for name, uri in task.sources.items():
                    if _writer(uri, task, jp.tasks) is None:
                        try:
                            check_readable(uri)
                        except StoreError as e:
                            raise UserError(
                                f"task {tname!r} ({task.file}), input {name!r} is not readable: {e}"
                            ) from None
                # ...and every output location must take what it will get
                for name, uri in task.sinks.items():
                    try:
                        check_writable(uri)
                    except StoreError as e:
                        raise UserError(
                            f"task {tname!r} ({task.file}), output {name!r} is not writable: {e}"
                        ) from None
            if tp.action == "run":
                running_tasks.add(tname)
            jp.tasks[tname] = tp
        plans.append(jp)
    return plans
