"""A task over its App: one task of a Job document resolved into a model `Task`, its App
merged in (parameters given, `--set`, defaults; env; inputs and outputs), values typed,
paths absolute, its cluster and kind looked up, and everything it may refer to checked.

Problems go to the Checker; a task with any is not built. Reading files and checks across
documents are the loader's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic
from runner.manifest.declarations import (
    BUILTIN_PLACEHOLDERS,
    check_placeholders,
    check_value_names,
    used_names,
)
from runner.manifest.diagnostics import Checker, did_you_mean, type_name
from runner.manifest.durations import parse_duration
from runner.manifest.kinds import default_command, kind_placeholders, kind_plugin
from runner.manifest.models import AppDoc, JobDoc, TaskSpec
from runner.manifest.params import ParamError, ParamSpec, coerce
from runner.manifest.source import Document
from runner.model import Cluster, Task

__all__ = ["Definitions", "WrittenTask", "check_cluster", "local_or_uri", "resolve_task"]

DEFAULT_BACKOFF = 1.0


@dataclass(frozen=True)
class Definitions:
    """What the whole set of manifests defines that a task may refer to."""

    apps: dict[str, tuple[AppDoc, Document]]
    clusters: dict[str, Cluster]
    default_cluster: Cluster  # for tasks whose job and self name none
    kinds: set[str]  # the kinds installed


@dataclass(frozen=True)
class WrittenTask:
    """A task as its Job document writes it, with the `--set` values given for it."""

    doc: Document
    job: JobDoc
    name: str
    spec: TaskSpec
    sets: dict[str, str]
    base_dir: Path  # the manifest's folder: relative paths are relative to it


def resolve_task(check: Checker, written: WrittenTask, known: Definitions) -> Task | None:
    """The model's Task for `written`, or None when it has problems (reported to `check`)."""
    doc, j, name, t = written.doc, written.job, written.name, written.spec
    sets, base_dir = written.sets, written.base_dir
    apps, clusters, kinds = known.apps, known.clusters, known.kinds
    here = ["spec", "tasks", name]
    before = len(check.problems)
    app: AppDoc | None = None
    if t.app is not None:
        if t.app not in apps:
            if ("App", t.app) in check.broken:
                return None
            check.at(
                doc,
                [*here, "app"],
                f"unknown app {t.app!r}",
                did_you_mean(t.app, apps) or "define it with a 'kind: App' document",
            )
            return None
        app = apps[t.app][0]

    kind = t.kind or (app.spec.kind if app else "shell")
    if t.kind is not None and t.kind not in kinds:
        check.at(
            doc,
            [*here, "kind"],
            f"unknown task kind {t.kind!r}",
            did_you_mean(t.kind, kinds) or "see `runner plugins`",
        )

    # an unknown job-level cluster is reported once, by `load`, not once per task
    if t.cluster is not None:
        check_cluster(check, doc, [*here, "cluster"], t.cluster, clusters)
    cluster_name = t.cluster or j.spec.cluster
    cluster = (
        clusters.get(cluster_name, known.default_cluster) if cluster_name else known.default_cluster
    )

    params: dict[str, Any] = {}
    types_: dict[str, str] = {}
    if app is not None:
        params, types_ = _app_params(check, doc, here, name, t, app, sets)
        # the App's own or its kind's default (_check_app); none is reported at the App
        command: str | list[str] = app.spec.command if app.spec.command is not None else ""
    else:
        structured = t.kind not in (None, "shell")  # a kind may take a mapping (wdl's inputs)
        for pname, value in t.params.items():
            if (isinstance(value, (dict, list)) and not structured) or value is None:
                check.at(
                    doc,
                    [*here, "params", pname],
                    f"parameter {pname!r}: expected a plain value, got {type_name(value)}",
                )
                continue
            params[pname] = value
            types_[pname] = "string"
        for pname, value in sets.items():
            if pname not in params:
                check.problems.append(
                    Diagnostic(
                        f"--set {name}.{pname}: task {name!r} has no parameter {pname!r}",
                        "--set",
                        hint=did_you_mean(pname, params),
                    )
                )
            else:
                params[pname] = value
        # else the kind's default; else empty, for a kind that writes its own (wdl)
        command = t.command if t.command is not None else default_command(kind) or ""
        check_value_names(check, doc, here, t.params, t.inputs, t.outputs)
        declared = set(t.params) | set(t.inputs) | set(t.outputs) | set(BUILTIN_PLACEHOLDERS)
        declared |= kind_placeholders(kind)
        check_placeholders(check, doc, [*here, "command"], command, declared, f"task {name!r}")

    declared_io_in = set(app.spec.inputs) if app else None
    declared_io_out = set(app.spec.outputs) if app else None
    for label, given, allowed in (
        ("input", t.inputs, declared_io_in),
        ("output", t.outputs, declared_io_out),
    ):
        if allowed is None:
            continue
        for k in given:
            if k not in allowed:
                check.at(
                    doc,
                    [*here, f"{label}s", k],
                    f"app {t.app!r} has no {label} {k!r}",
                    did_you_mean(k, allowed),
                    key=True,
                )
    declared_env = set(params) | set(t.inputs) | set(t.outputs) | set(BUILTIN_PLACEHOLDERS)
    if app:
        declared_env |= set(app.spec.inputs) | set(app.spec.outputs)
    for k, v in t.env.items():
        check_placeholders(check, doc, [*here, "env", k], v, declared_env, f"task {name!r}")
    if t.workdir is not None:
        check_placeholders(
            check, doc, [*here, "workdir"], t.workdir, declared_env, f"task {name!r}"
        )

    if len(check.problems) != before:
        return None
    env = dict(j.spec.env)
    if app:
        env.update(app.spec.env)
    env.update(t.env)
    timeout = t.timeout if t.timeout is not None else (app.spec.timeout if app else None)
    retries = (
        t.retries
        if t.retries is not None
        else (app.spec.retries if app and app.spec.retries is not None else 0)
    )
    retry_on = t.retry_on if t.retry_on is not None else (app.spec.retry_on if app else None)
    instances = t.instances or (app.spec.instances if app and app.spec.instances else 1)
    inputs = {k: local_or_uri(v, base_dir) for k, v in t.inputs.items()}
    outputs = {k: local_or_uri(v, base_dir) for k, v in t.outputs.items()}
    if app:
        for k in app.spec.inputs:
            inputs.setdefault(k, "")
        for k in app.spec.outputs:
            outputs.setdefault(k, "")
    task = Task(
        job=j.metadata.name,
        name=name,
        kind=kind,
        app=t.app,
        command=command,
        params=params,
        param_types=types_,
        env=env,
        workdir=(base_dir / t.workdir) if t.workdir else base_dir,
        timeout=parse_duration(timeout) if timeout is not None else None,
        retries=retries,
        retry_on=tuple(retry_on) if retry_on is not None else None,
        retry_backoff=parse_duration(t.retry_backoff)
        if t.retry_backoff is not None
        else DEFAULT_BACKOFF,
        instances=instances,
        depends_on=tuple(t.depends_on),
        cluster=cluster,
        inputs=inputs,
        outputs=outputs,
        logs=local_or_uri(t.logs, base_dir) if t.logs else None,
        base_dir=base_dir,
        file=doc.file,
        image=_either(t.image, app.spec.image if app else None),
        image_pull_policy=_either(t.image_pull_policy, app.spec.image_pull_policy if app else None)
        or "IfNotPresent",
        runtime=_either(t.runtime, app.spec.runtime if app else None),
        run_args=tuple(_either(t.run_args, app.spec.run_args if app else None) or ()),
    )
    # what the task's kind checks itself (a blender task's output format, say), reported at
    # the parameter's line: the task's value, else the app's default
    plugin = kind_plugin(kind)
    if task.image is not None and plugin is not None and not plugin.runs_in_image:
        where = [*here, "image"] if t.image is not None else here
        check.at(
            doc, where, f"task {name!r}: a {kind} task cannot run in an image",
            f"remove `image:`; the {kind} kind runs on the host", key=t.image is None,
        )  # fmt: skip
    upstream = _upstream_outputs(j, name, base_dir)
    found = plugin.check(task=task, upstream_outputs=upstream) if plugin is not None else []
    for pname, message, hint in found:
        if pname is not None and pname in t.params:
            check.at(doc, [*here, "params", pname], f"task {name!r}: {message}", hint)
        elif pname is not None and app is not None and pname in app.spec.params:
            app_doc = apps[app.metadata.name][1]
            check.at(app_doc, ["spec", "params", pname], f"task {name!r}: {message}", hint)
        else:
            check.at(doc, here, f"task {name!r}: {message}", hint, key=True)
    return None if len(check.problems) != before else task


def _app_params(
    check: Checker,
    doc: Document,
    here: list[Any],
    name: str,
    t: TaskSpec,
    app: AppDoc,
    sets: dict[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """A task's values for its app's parameters (given, --set, defaults) and their types."""
    specs: dict[str, ParamSpec] = app.spec.params
    app_name = app.metadata.name
    params: dict[str, Any] = {}
    given: set[str] = set()  # set by the task, even when wrongly: no "must set" on top
    for pname, value in t.params.items():
        if pname not in specs:
            check.at(
                doc,
                [*here, "params", pname],
                f"app {app_name!r} has no parameter {pname!r}",
                did_you_mean(pname, specs) or "remove it",
                key=True,
            )
            continue
        given.add(pname)
        if not specs[pname].overridable:
            check.at(
                doc,
                [*here, "params", pname],
                f"parameter {pname!r} of app {app_name!r} is not overridable",
                "remove it here, or set 'overridable: true' in the app",
                key=True,
            )
            continue
        try:
            params[pname] = coerce(specs[pname], value)
        except ParamError as e:
            check.at(doc, [*here, "params", pname], f"parameter {pname!r}: {e}")
    for pname, value in sets.items():
        if pname not in specs:
            check.problems.append(
                Diagnostic(
                    f"--set {name}.{pname}: app {app_name!r} has no parameter {pname!r}",
                    "--set",
                    hint=did_you_mean(pname, specs),
                )
            )
            continue
        given.add(pname)
        if not specs[pname].overridable:
            check.problems.append(
                Diagnostic(f"--set {name}.{pname}: parameter {pname!r} is not overridable", "--set")
            )
            continue
        try:
            params[pname] = coerce(specs[pname], value)
        except ParamError as e:
            check.problems.append(Diagnostic(f"--set {name}.{pname}: {e}", "--set"))
    env = [v for k, v in app.spec.env.items() if k not in t.env]
    used = used_names([*([] if app.spec.command is None else [app.spec.command]), *env])
    for pname, spec in specs.items():
        if pname in params or pname in given:
            continue
        if spec.default is not None:
            params[pname] = spec.default
        elif spec.required or pname in used:
            why = "required parameter" if spec.required else "parameter"
            check.at(
                doc,
                here,
                f"task {name!r} must set {why} {pname!r} of app {app_name!r}"
                + ("" if spec.required else ": the app's command uses it and it has no default"),
                f"add 'params: {{{pname}: ...}}' to the task",
                key=True,
            )
    return params, {pname: spec.type for pname, spec in specs.items()}


def _upstream_outputs(j: JobDoc, name: str, base_dir: Path) -> dict[Path, str]:
    """The local output folders of the tasks task `name` depends on, directly or not, each
    with the task that writes it: what is below them may not exist before that task runs."""
    found: dict[Path, str] = {}
    seen: set[str] = set()
    todo = list(j.spec.tasks[name].depends_on)
    while todo:
        up = todo.pop()
        if up in seen or up not in j.spec.tasks:
            continue
        seen.add(up)
        for value in j.spec.tasks[up].outputs.values():
            if "://" not in value or value.startswith("file://"):
                found[(base_dir / value.removeprefix("file://")).resolve()] = up
        todo.extend(j.spec.tasks[up].depends_on)
    return found


def _either(mine: Any, apps: Any) -> Any:
    """A task's own setting, else its App's."""
    return mine if mine is not None else apps


def check_cluster(
    check: Checker, doc: Document, path: list[Any], name: str, clusters: dict[str, Cluster]
) -> None:
    """Report `name` at `path` unless a Cluster document defines it."""
    if name not in clusters and ("Cluster", name) not in check.broken:
        check.at(
            doc,
            path,
            f"unknown cluster {name!r}",
            did_you_mean(name, clusters) or "define it with a 'kind: Cluster' document",
        )


def local_or_uri(value: str, base_dir: Path) -> str:
    """A local path made absolute (relative to the manifest); URIs other than file:// kept."""
    if "://" in value and not value.startswith("file://"):
        return value
    path = value.removeprefix("file://")
    return str((base_dir / path).resolve()) if path else str(base_dir)
