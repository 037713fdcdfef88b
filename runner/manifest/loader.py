"""From files and directories to a checked `Bundle` of jobs, or every problem at once.

Reads every `*.yaml`/`*.yml`, validates each document against the models, then checks what only
the whole set can tell: names of apps, clusters, tasks and plugins, dependency cycles, parameter
values and `$<placeholders>`. Each problem is a Diagnostic with file, line and column.

The parts live beside it: `diagnostics` (the Checker that collects positioned problems),
`overrides` (`--set`), `resolve` (a task over its App), `declarations` (which `$<names>` may be
used where), `kinds` (the kind plugins the loader asks about).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runner import plugins
from runner.errors import Diagnostic, UserError
from runner.graph import find_cycles, topological_order
from runner.manifest.declarations import (
    BUILTIN_PLACEHOLDERS,
    check_placeholders,
    check_value_names,
)
from runner.manifest.diagnostics import Checker, did_you_mean, in_file_order
from runner.manifest.kinds import (
    _KINDS,  # noqa: F401 (re-exported: tests patch the cache here)
    command_hint,
    default_command,
    kind_placeholders,
    kind_plugin,
)
from runner.manifest.models import (
    API_VERSION,
    DOCUMENT_KINDS,
    NAME_PATTERN,
    AppDoc,
    ClusterDoc,
    JobDoc,
    JobSpec,
    Metadata,
    TaskSpec,
)
from runner.manifest.overrides import override_targets, parse_overrides
from runner.manifest.resolve import Definitions, WrittenTask, check_cluster, resolve_task
from runner.manifest.source import Document, read_documents
from runner.manifest.template import TemplateError, placeholders
from runner.model import Bundle, Cluster, Job, Task

# besides `load`, re-exported for callers that import them from here: the model's types,
# `BUILTIN_PLACEHOLDERS`, `did_you_mean`, `parse_overrides` and the kind cache's functions
__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "Bundle",
    "Cluster",
    "Job",
    "Task",
    "default_command",
    "did_you_mean",
    "kind_plugin",
    "load",
    "parse_overrides",
]


def collect_files(paths: Sequence[str]) -> tuple[list[Path], list[Diagnostic]]:
    """Manifest files named by `paths` (directories: every *.yaml/*.yml inside, sorted)."""
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.suffix in (".yaml", ".yml")
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                problems.append(Diagnostic(f"no *.yaml or *.yml files in directory {raw!r}", raw))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(
                Diagnostic(f"no such file or directory: {raw!r}", raw, hint="check the path")
            )
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, problems


def load(paths: Sequence[str], overrides: Sequence[str] = (), *, need_job: bool = True) -> Bundle:
    """Read, validate and resolve manifests; raise UserError listing every problem.
    `need_job`: manifests without a Job are an error (not for `runner cluster`)."""
    files, problems = collect_files(paths)
    check = Checker()
    check.problems.extend(problems)
    sets, set_problems = parse_overrides(overrides)
    check.problems.extend(set_problems)

    digest = hashlib.sha256()
    docs: list[Document] = []
    for f in files:
        try:
            raw = f.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            check.problems.append(Diagnostic(f"cannot read manifest: {e}", str(f)))
            continue
        digest.update(str(f).encode() + b"\0" + raw + b"\0")
        found, yaml_problems = read_documents(str(f), text)
        check.problems.extend(yaml_problems)
        docs.extend(found)

    apps: dict[str, tuple[AppDoc, Document]] = {}
    clusters: dict[str, tuple[ClusterDoc, Document]] = {}
    jobs: dict[str, tuple[JobDoc, Document]] = {}
    # task names as written, valid or not: a dependency on an invalid task is not "unknown"
    written_tasks: dict[str, set[str]] = {}
    for doc in docs:
        m = _validated(check, doc)
        if m is None:
            check.broken.add(_kind_and_name(doc))
            m = _salvage_job(doc)
            if m is None:
                continue
            written_tasks[m.metadata.name] = set(doc.data["spec"]["tasks"])
        table: dict[str, Any] = (
            apps if isinstance(m, AppDoc) else clusters if isinstance(m, ClusterDoc) else jobs
        )
        name = m.metadata.name  # type: ignore[attr-defined]
        if name in table:
            _name_taken(check, doc, type(m).__name__.removesuffix("Doc"), name, table[name][1])
        else:
            table[name] = (m, doc)

    if not docs and not check.problems:
        check.problems.append(Diagnostic("no manifest documents found", ", ".join(paths)))
    elif not jobs and need_job and not check.problems:
        check.problems.append(
            Diagnostic(
                "no Job in these manifests; nothing to run",
                ", ".join(paths),
                hint="add a document with 'kind: Job'",
            )
        )

    kinds = set(plugins.available("kind"))
    executors = set(plugins.available("executor"))
    resolved_clusters: dict[str, Cluster] = {}
    for name, (c, doc) in clusters.items():
        if c.spec.executor not in executors:
            check.at(
                doc,
                ["spec", "executor"],
                f"unknown executor {c.spec.executor!r}",
                did_you_mean(c.spec.executor, executors) or "see `runner plugins`",
            )
        resolved_clusters[name] = Cluster(
            name,
            c.spec.executor,
            c.spec.slots,
            c.spec.queue,
            dict(c.spec.settings),
            {g: (list(spec.hosts), spec.slots) for g, spec in c.spec.groups.items()},
        )
    for a, doc in apps.values():
        _check_app(check, a, doc, kinds)

    set_targets, target_problems = override_targets(
        sets, {j: jd.spec.tasks for j, (jd, _) in jobs.items()}
    )
    check.problems.extend(target_problems)

    known = Definitions(apps, resolved_clusters, Cluster("default", "local", None, None, {}), kinds)
    resolved_jobs: dict[str, Job] = {}
    for job_name, (j, doc) in jobs.items():
        if j.spec.cluster is not None:
            check_cluster(check, doc, ["spec", "cluster"], j.spec.cluster, resolved_clusters)
        base_dir = Path(doc.file).resolve().parent
        tasks: dict[str, Task] = {}
        for task_name, t in j.spec.tasks.items():
            written = WrittenTask(
                doc, j, task_name, t, set_targets.get((job_name, task_name), {}), base_dir
            )
            task = resolve_task(check, written, known)
            if task is not None:
                tasks[task_name] = task
        _check_job_env(check, doc, j, tasks)
        deps = {name: t.depends_on for name, t in j.spec.tasks.items()}
        for task_name, t in j.spec.tasks.items():
            for i, dep in enumerate(t.depends_on):
                if dep not in j.spec.tasks and dep not in written_tasks.get(job_name, ()):
                    check.at(
                        doc,
                        ["spec", "tasks", task_name, "dependsOn", i],
                        f"task {task_name!r} depends on unknown task {dep!r}",
                        did_you_mean(dep, j.spec.tasks),
                    )
                elif dep == task_name:
                    check.at(
                        doc,
                        ["spec", "tasks", task_name, "dependsOn", i],
                        f"task {task_name!r} depends on itself",
                        "remove it from dependsOn",
                    )
        for cyc in find_cycles(deps):
            if len(cyc) < 2:
                continue
            path = " -> ".join([*cyc, cyc[0]])
            check.at(
                doc,
                ["spec", "tasks", cyc[0], "dependsOn"],
                f"dependency cycle: {path}",
                "remove one of these dependsOn entries",
            )
        if not check.problems:
            order = topological_order(deps)
            resolved_jobs[job_name] = Job(job_name, doc.file, tasks, tuple(order), base_dir)

    if check.problems:
        raise UserError(in_file_order(check.problems, files))
    base = Path(files[0]).resolve().parent if files else Path.cwd()
    return Bundle(
        jobs=resolved_jobs,
        files=tuple(str(f) for f in files),
        digest=digest.hexdigest(),
        base_dir=base,
        documents=len(docs),
        apps={n: a for n, (a, _) in apps.items()},
        clusters=resolved_clusters,
    )


def _validated(check: Checker, doc: Document) -> BaseModel | None:
    """`doc` as the model its `kind` names, or None (the problems reported to `check`)."""
    data = doc.data
    if not isinstance(data, dict):
        check.at(
            doc,
            [],
            "a manifest document must be a mapping with apiVersion, kind, metadata and spec",
            "start the document with 'apiVersion: runner/v1'",
        )
        return None
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in DOCUMENT_KINDS:
        if "kind" not in data:
            check.at(doc, [], "missing 'kind'", "add 'kind: App', 'kind: Cluster' or 'kind: Job'")
        else:
            hint = did_you_mean(str(kind), DOCUMENT_KINDS)
            check.at(doc, ["kind"], f"unknown kind {kind!r}", hint)
        return None
    if data.get("apiVersion") != API_VERSION:
        v = data.get("apiVersion")
        if "apiVersion" not in data:
            check.at(doc, [], "missing 'apiVersion'", f"add 'apiVersion: {API_VERSION}'")
        else:
            check.at(
                doc,
                ["apiVersion"],
                f"unsupported apiVersion {v!r}",
                f"this runner reads 'apiVersion: {API_VERSION}'",
            )
        return None
    cls = DOCUMENT_KINDS[kind]
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        check.pydantic(doc, cls, e)
        return None


def _name_taken(check: Checker, doc: Document, kind: str, name: str, first: Document) -> None:
    check.at(
        doc,
        ["metadata", "name"],
        f"{kind} {name!r} is defined twice",
        f"the first definition is at {first.file}:{first.locate(['metadata', 'name']).line}; "
        "rename one of them",
    )


def _check_app(check: Checker, a: AppDoc, doc: Document, kinds: set[str]) -> None:
    if a.spec.kind not in kinds:
        check.at(
            doc,
            ["spec", "kind"],
            f"unknown task kind {a.spec.kind!r}",
            did_you_mean(a.spec.kind, kinds) or "see `runner plugins`",
        )
    check_value_names(check, doc, ["spec"], a.spec.params, a.spec.inputs, a.spec.outputs)
    declared = (
        set(a.spec.params)
        | set(a.spec.inputs)
        | set(a.spec.outputs)
        | set(BUILTIN_PLACEHOLDERS)
        | kind_placeholders(a.spec.kind)
    )
    if a.spec.command is not None:
        check_placeholders(
            check, doc, ["spec", "command"], a.spec.command, declared, f"app {a.metadata.name!r}"
        )
    elif a.spec.kind in kinds:  # (a kind that is not installed may well have a default)
        # from here on the App is as if it had written its kind's default: its tasks get the
        # same command, and the same fingerprints
        a.spec.command = default_command(a.spec.kind)
        if a.spec.command is None:
            check.at(
                doc,
                ["spec"],
                f"missing required key 'command': kind {a.spec.kind!r} has no default command",
                command_hint(kinds),
                key=True,  # where pydantic reports a missing key: at the key opening the spec
            )
    for k, v in a.spec.env.items():
        check_placeholders(check, doc, ["spec", "env", k], v, declared, f"app {a.metadata.name!r}")


def _salvage_job(doc: Document) -> JobDoc | None:
    """The valid tasks of a Job document that failed validation, so that their own problems
    (unknown apps, parameters, placeholders, dependencies, cycles) are reported in the same
    pass as the document's. The result is only checked, never run: the load fails anyway."""
    data = doc.data
    if not isinstance(data, dict) or data.get("kind") != "Job":
        return None
    spec, meta = data.get("spec"), data.get("metadata")
    if not isinstance(spec, dict) or not isinstance(spec.get("tasks"), dict):
        return None
    tasks: dict[str, TaskSpec] = {}
    for name, raw in spec["tasks"].items():
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            continue
        try:
            tasks[name] = TaskSpec.model_validate(raw)
        except ValidationError:
            continue
    try:
        metadata = Metadata.model_validate(meta)
    except ValidationError:
        metadata = Metadata.model_construct(name=f"<job at {doc.file}:{doc.locate([]).line}>")
    cluster = spec.get("cluster")
    job_spec = JobSpec.model_construct(
        cluster=cluster if isinstance(cluster, str) and re.match(NAME_PATTERN, cluster) else None,
        env={},
        tasks=tasks,
        description=None,
    )
    if not tasks:
        return None
    return JobDoc.model_construct(
        api_version="runner/v1", kind="Job", metadata=metadata, spec=job_spec
    )


def _kind_and_name(doc: Document) -> tuple[str, str]:
    """What an invalid document would have defined, as far as it says."""
    data = doc.data if isinstance(doc.data, dict) else {}
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return str(data.get("kind")), name if isinstance(name, str) else ""


def _check_job_env(check: Checker, doc: Document, j: JobDoc, tasks: dict[str, Task]) -> None:
    """The job's env is rendered with each task's values: every task must have them all."""
    for k, v in j.spec.env.items():
        try:
            found = placeholders(v)
        except TemplateError as e:
            check.at(doc, ["spec", "env", k], str(e), offset=e.offset)
            continue
        # tasks whose app or own env replaces this variable do not render the job's text
        users = [t for t in tasks.values() if t.env.get(k) == v]
        known = {t.name: {*t.values(), "instance_id"} for t in users} if found else {}
        for pname, offset in found:
            missing = [name for name, names in known.items() if pname not in names]
            if missing:
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                check.at(
                    doc,
                    ["spec", "env", k],
                    f"placeholder '$<{pname}>' in the job's env has no value in task "
                    + ", ".join(repr(m) for m in missing[:3])
                    + more,
                    "declare it in those tasks, or set this variable in each task's env",
                    offset=offset,
                )
