"""From files and directories to a checked `Bundle` of jobs, or every problem at once.

Reads every `*.yaml`/`*.yml`, validates each document against the models, then checks what only
the whole set can tell: names of apps, clusters, tasks and plugins, dependency cycles, parameter
values and `$<placeholders>`. Each problem is a Diagnostic with file, line and column.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runner import plugins
from runner.errors import Diagnostic, UserError
from runner.graph import find_cycles, topological_order
from runner.manifest.durations import parse_duration
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
from runner.manifest.params import ParamError, ParamSpec, coerce
from runner.manifest.source import Document, read_documents
from runner.manifest.template import TemplateError, placeholders, shell_contexts
from runner.model import Bundle, Cluster, Job, Task

__all__ = ["BUILTIN_PLACEHOLDERS", "Bundle", "Cluster", "Job", "Task", "load", "parse_overrides"]

BUILTIN_PLACEHOLDERS = ("instance_id", "instance_count", "task", "job")
DEFAULT_BACKOFF = 1.0


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """' did you mean 'x'?' style hint text, or None."""
    opts = list(options)
    close = difflib.get_close_matches(str(word), opts, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if opts and len(opts) <= 12:
        return "expected one of: " + ", ".join(sorted(opts))
    return None


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


def parse_overrides(
    items: Sequence[str],
) -> tuple[list[tuple[str | None, str, str, str]], list[Diagnostic]]:
    """`--set [job/]task.param=value` items as (job, task, param, value)."""
    out: list[tuple[str | None, str, str, str]] = []
    problems = []
    for item in items:
        target, eq, value = item.partition("=")
        job, slash, rest = target.rpartition("/")
        task, dot, param = rest.rpartition(".")
        if not eq or not dot or not task or not param:
            problems.append(
                Diagnostic(
                    f"--set {item!r}: expected TASK.PARAM=VALUE (or JOB/TASK.PARAM=VALUE)",
                    "--set",
                    hint="for example: --set render.frames=1-20",
                )
            )
            continue
        out.append((job if slash else None, task, param, value))
    return out, problems


class _Checker:
    """Collects diagnostics while it resolves documents into a bundle."""

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
        loc = doc.locate(path, key=key) if offset is None else doc.locate_in(path, offset)
        self.problems.append(Diagnostic(message, loc.file, loc.line, loc.column, hint))

    # -- per-document validation --------------------------------------------------------------

    def model(self, doc: Document) -> BaseModel | None:
        data = doc.data
        if not isinstance(data, dict):
            self.at(
                doc,
                [],
                "a manifest document must be a mapping with apiVersion, kind, metadata and spec",
                "start the document with 'apiVersion: runner/v1'",
            )
            return None
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in DOCUMENT_KINDS:
            if "kind" not in data:
                self.at(
                    doc, [], "missing 'kind'", "add 'kind: App', 'kind: Cluster' or 'kind: Job'"
                )
            else:
                hint = did_you_mean(str(kind), DOCUMENT_KINDS)
                self.at(doc, ["kind"], f"unknown kind {kind!r}", hint)
            return None
        if data.get("apiVersion") != API_VERSION:
            v = data.get("apiVersion")
            if "apiVersion" not in data:
                self.at(doc, [], "missing 'apiVersion'", f"add 'apiVersion: {API_VERSION}'")
            else:
                self.at(
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
            self.pydantic(doc, cls, e)
            return None

    def pydantic(self, doc: Document, cls: type[BaseModel], exc: ValidationError) -> None:
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

    # -- cross-document checks ----------------------------------------------------------------

    def name_taken(self, doc: Document, kind: str, name: str, first: Document) -> None:
        self.at(
            doc,
            ["metadata", "name"],
            f"{kind} {name!r} is defined twice",
            f"the first definition is at {first.file}:{first.locate(['metadata', 'name']).line}; "
            "rename one of them",
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


def _type_name(v: Any) -> str:
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
        got = _type_name(errs[0].get("input"))
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


def load(paths: Sequence[str], overrides: Sequence[str] = (), *, need_job: bool = True) -> Bundle:
    """Read, validate and resolve manifests; raise UserError listing every problem.
    `need_job`: manifests without a Job are an error (not for `runner cluster`)."""
    files, problems = collect_files(paths)
    check = _Checker()
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
        m = check.model(doc)
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
            check.name_taken(doc, type(m).__name__.removesuffix("Doc"), name, table[name][1])
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

    set_targets: dict[tuple[str, str], dict[str, str]] = {}
    for job_name, task_name, param, value in sets:
        matches = [
            j
            for j, (jd, _) in jobs.items()
            if (job_name is None or j == job_name) and task_name in jd.spec.tasks
        ]
        if not matches:
            check.problems.append(
                Diagnostic(
                    f"--set {task_name}.{param}: no task {task_name!r} in "
                    + (f"job {job_name!r}" if job_name else "any job"),
                    "--set",
                    hint=did_you_mean(
                        task_name, [t for jd, _ in jobs.values() for t in jd.spec.tasks]
                    ),
                )
            )
        elif len(matches) > 1:
            check.problems.append(
                Diagnostic(
                    f"--set {task_name}.{param}: task {task_name!r} is in several jobs "
                    f"({', '.join(matches)})",
                    "--set",
                    hint="write JOB/TASK.PARAM=VALUE",
                )
            )
        else:
            set_targets.setdefault((matches[0], task_name), {})[param] = value

    default_cluster = Cluster("default", "local", None, None, {})
    resolved_jobs: dict[str, Job] = {}
    for job_name, (j, doc) in jobs.items():
        if j.spec.cluster is not None:
            _check_cluster(check, doc, ["spec", "cluster"], j.spec.cluster, resolved_clusters)
        base_dir = Path(doc.file).resolve().parent
        tasks: dict[str, Task] = {}
        for task_name, t in j.spec.tasks.items():
            task = _resolve_task(
                check,
                doc,
                j,
                task_name,
                t,
                apps,
                resolved_clusters,
                default_cluster,
                kinds,
                set_targets.get((job_name, task_name), {}),
                base_dir,
            )
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
            resolved_jobs[job_name] = Job(job_name, doc.file, tasks, order, base_dir)

    if check.problems:
        raise UserError(_in_file_order(check.problems, files))
    base = Path(files[0]).resolve().parent if files else Path.cwd()
    return Bundle(
        jobs=resolved_jobs,
        files=[str(f) for f in files],
        digest=digest.hexdigest(),
        base_dir=base,
        documents=len(docs),
        apps={n: a for n, (a, _) in apps.items()},
        clusters=resolved_clusters,
    )


def _check_app(check: _Checker, a: AppDoc, doc: Document, kinds: set[str]) -> None:
    if a.spec.kind not in kinds:
        check.at(
            doc,
            ["spec", "kind"],
            f"unknown task kind {a.spec.kind!r}",
            did_you_mean(a.spec.kind, kinds) or "see `runner plugins`",
        )
    _check_value_names(check, doc, ["spec"], a.spec.params, a.spec.inputs, a.spec.outputs)
    declared = (
        set(a.spec.params)
        | set(a.spec.inputs)
        | set(a.spec.outputs)
        | set(BUILTIN_PLACEHOLDERS)
        | kind_placeholders(a.spec.kind)
    )
    if a.spec.command is not None:
        _check_placeholders(
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
                _command_hint(kinds),
                key=True,  # where pydantic reports a missing key: at the key opening the spec
            )
    for k, v in a.spec.env.items():
        _check_placeholders(check, doc, ["spec", "env", k], v, declared, f"app {a.metadata.name!r}")


def _check_value_names(
    check: _Checker,
    doc: Document,
    base: list[Any],
    params: Iterable[str],
    inputs: Iterable[str],
    outputs: Iterable[str],
) -> None:
    """Each `$<name>` has one meaning: not a built-in, not both a parameter and an input."""
    seen: dict[str, str] = {}
    for section, names in (("params", params), ("inputs", inputs), ("outputs", outputs)):
        for n in names:
            if n in BUILTIN_PLACEHOLDERS:
                check.at(
                    doc,
                    [*base, section, n],
                    f"{n!r} is a built-in placeholder: $<{n}> is set by the runner",
                    "choose another name",
                    key=True,
                )
            elif n in seen:
                check.at(
                    doc,
                    [*base, section, n],
                    f"{n!r} is already declared in {seen[n]}: $<{n}> would be ambiguous",
                    "choose another name",
                    key=True,
                )
            seen.setdefault(n, section)


def _check_placeholders(
    check: _Checker,
    doc: Document,
    path: list[Any],
    command: str | list[str],
    declared: set[str],
    owner: str,
) -> None:
    items: list[tuple[list[Any], str]] = (
        [(path, command)]
        if isinstance(command, str)
        else [([*path, i], c) for i, c in enumerate(command)]
    )
    for p, text in items:
        try:
            found = placeholders(text)
            if isinstance(command, str) and p and p[-1] == "command":
                shell_contexts(text)  # a command string runs through /bin/sh
        except TemplateError as e:
            check.at(doc, p, str(e), offset=e.offset)
            continue
        for name, offset in found:
            if name not in declared:
                check.at(
                    doc,
                    p,
                    f"placeholder '$<{name}>' is not declared by {owner}",
                    did_you_mean(name, declared - set(BUILTIN_PLACEHOLDERS))
                    or f"declare a parameter '{name}', or write '$$<{name}>' for literal text",
                    offset=offset,
                )


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


def _check_job_env(check: _Checker, doc: Document, j: JobDoc, tasks: dict[str, Task]) -> None:
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


def _check_cluster(
    check: _Checker, doc: Document, path: list[Any], name: str, clusters: dict[str, Cluster]
) -> None:
    """Report `name` at `path` unless a Cluster document defines it."""
    if name not in clusters and ("Cluster", name) not in check.broken:
        check.at(
            doc,
            path,
            f"unknown cluster {name!r}",
            did_you_mean(name, clusters) or "define it with a 'kind: Cluster' document",
        )


def _used_names(templates: Iterable[str | list[str]]) -> set[str]:
    """Placeholder names used in `templates` (malformed ones are reported elsewhere)."""
    used: set[str] = set()
    for template in templates:
        for text in [template] if isinstance(template, str) else template:
            try:
                used.update(n for n, _ in placeholders(text))
            except TemplateError:
                continue
    return used


def _app_params(
    check: _Checker,
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
    used = _used_names([*([] if app.spec.command is None else [app.spec.command]), *env])
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


def _resolve_task(
    check: _Checker,
    doc: Document,
    j: JobDoc,
    name: str,
    t: TaskSpec,
    apps: dict[str, tuple[AppDoc, Document]],
    clusters: dict[str, Cluster],
    default_cluster: Cluster,
    kinds: set[str],
    sets: dict[str, str],
    base_dir: Path,
) -> Task | None:
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
        _check_cluster(check, doc, [*here, "cluster"], t.cluster, clusters)
    cluster_name = t.cluster or j.spec.cluster
    cluster = clusters.get(cluster_name, default_cluster) if cluster_name else default_cluster

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
                    f"parameter {pname!r}: expected a plain value, got {_type_name(value)}",
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
        _check_value_names(check, doc, here, t.params, t.inputs, t.outputs)
        declared = set(t.params) | set(t.inputs) | set(t.outputs) | set(BUILTIN_PLACEHOLDERS)
        declared |= kind_placeholders(kind)
        _check_placeholders(check, doc, [*here, "command"], command, declared, f"task {name!r}")

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
        _check_placeholders(check, doc, [*here, "env", k], v, declared_env, f"task {name!r}")
    if t.workdir is not None:
        _check_placeholders(
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
    inputs = {k: _local_or_uri(v, base_dir) for k, v in t.inputs.items()}
    outputs = {k: _local_or_uri(v, base_dir) for k, v in t.outputs.items()}
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
        retry_on=retry_on,
        retry_backoff=parse_duration(t.retry_backoff)
        if t.retry_backoff is not None
        else DEFAULT_BACKOFF,
        instances=instances,
        depends_on=list(t.depends_on),
        cluster=cluster,
        inputs=inputs,
        outputs=outputs,
        logs=_local_or_uri(t.logs, base_dir) if t.logs else None,
        base_dir=base_dir,
        file=doc.file,
        image=_either(t.image, app.spec.image if app else None),
        image_pull_policy=_either(t.image_pull_policy, app.spec.image_pull_policy if app else None)
        or "IfNotPresent",
        runtime=_either(t.runtime, app.spec.runtime if app else None),
        run_args=list(_either(t.run_args, app.spec.run_args if app else None) or []),
    )
    # what the task's kind checks itself (a blender task's output format, say), reported at
    # the parameter's line: the task's value, else the app's default
    if task.image is not None and not getattr(kind_plugin(kind), "runs_in_image", True):
        where = [*here, "image"] if t.image is not None else here
        check.at(
            doc, where, f"task {name!r}: a {kind} task cannot run in an image",
            f"remove `image:`; the {kind} kind runs on the host", key=t.image is None,
        )  # fmt: skip
    checker = getattr(kind_plugin(kind), "check", None)
    upstream = _upstream_outputs(j, name, base_dir)
    for pname, message, hint in checker(task=task, upstream_outputs=upstream) if checker else ():
        if pname is not None and pname in t.params:
            check.at(doc, [*here, "params", pname], f"task {name!r}: {message}", hint)
        elif pname is not None and app is not None and pname in app.spec.params:
            app_doc = apps[app.metadata.name][1]
            check.at(app_doc, ["spec", "params", pname], f"task {name!r}: {message}", hint)
        else:
            check.at(doc, here, f"task {name!r}: {message}", hint, key=True)
    return None if len(check.problems) != before else task


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


_KINDS: dict[str, Any] = {}


def kind_plugin(name: str) -> Any:
    """The kind plugin `name` (one instance per process), or None when it is not installed."""
    if name not in _KINDS:
        _KINDS[name] = plugins.load("kind", name)() if name in plugins.available("kind") else None
    return _KINDS[name]


def kind_placeholders(name: str) -> set[str]:
    """Extra `$<name>`s a kind fills in for commands (blender's `$<frames>`)."""
    return set(getattr(kind_plugin(name), "placeholders", ()))


def default_command(name: str) -> str | list[str] | None:
    """The command a task or App of kind `name` runs when it writes none: the kind's
    `default_command` (runner.contracts.Kind), or None when it has none or is not installed.

    The one place that reads the member: a kind written before it existed has none. A
    declared default is checked like a written command; a bad one is the plugin's fault."""
    declared = getattr(kind_plugin(name), "default_command", None)
    if declared is None:
        return None
    parts = [declared] if isinstance(declared, str) else declared
    problem = None
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        problem = "it must be a string, a list of strings or None"
    elif not parts or not parts[0].strip():
        problem = "it is empty"
    elif any(_has_placeholders(p) for p in parts):
        problem = "it holds $<placeholders>, which only a command a manifest writes may have"
    if problem is not None:
        raise UserError(
            f"kind plugin {name!r} declares an invalid default_command {declared!r}: {problem}; "
            "upgrade the package that provides it, or write `command:` in the manifest"
        )
    return list(parts) if isinstance(declared, list) else declared


def _has_placeholders(text: str) -> bool:
    try:
        return bool(placeholders(text))
    except TemplateError:  # a malformed `$<`
        return True


def _command_hint(kinds: Iterable[str]) -> str:
    """What to write when `command:` is missing: the command, or a kind that has a default."""
    with_default = []
    for k in sorted(kinds):
        try:
            if default_command(k) is not None:
                with_default.append(k)
        except UserError:  # a kind that fails to load, or declares a bad default: no hint
            continue
    more = f", or set a kind that has a default command ({', '.join(with_default)})"
    return "add 'command: ...' here" + (more if with_default else "")


def _in_file_order(problems: list[Diagnostic], files: Sequence[Path]) -> list[Diagnostic]:
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


def _local_or_uri(value: str, base_dir: Path) -> str:
    """A local path made absolute (relative to the manifest); URIs other than file:// kept."""
    if "://" in value and not value.startswith("file://"):
        return value
    path = value.removeprefix("file://")
    return str((base_dir / path).resolve()) if path else str(base_dir)
