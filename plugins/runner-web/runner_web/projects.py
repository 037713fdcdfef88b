"""The manifests side of the dashboard: projects, their Apps and Clusters, and submissions.

A project is a folder under the served path that holds manifests (`*.yaml`, `*.yml`) itself.
Its files are loaded the way `runner validate` loads them, once per change of any of them.

A submission is a Job written as a manifest file into the App's project folder, under a hidden
name (`.submitted-JOB.yaml`: `runner apply FOLDER` does not pick it up; paths in it are relative
to the project, like everything else there). It is checked by loading the project with it, so a
form shows exactly what `runner validate` says, and run by `runner apply ... --job JOB` in a
process of its own, which outlives the server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import api
from runner.contracts import public_env
from runner.errors import Diagnostic, UserError

if TYPE_CHECKING:
    from runner.manifest.models import AppDoc
    from runner.model import Bundle

__all__ = ["Field", "Form", "Project", "Projects", "spawn_apply"]

SUBMITTED = ".submitted-"
_QUOTED = re.compile(r"'([^']+)'")


@dataclass
class Project:
    """A folder of manifests, loaded (or the problems that kept it from loading)."""

    id: str  # its path relative to the served folder ("." for the folder itself)
    path: Path
    files: list[Path]
    bundle: Bundle | None = None
    problems: list[Diagnostic] = field(default_factory=list)

    def locations(self) -> list[dict[str, str]]:
        """Where each task's data comes from and goes: inputs, outputs and logs as written."""
        found: list[dict[str, str]] = []
        if self.bundle is None:
            return found
        for job in self.bundle.jobs.values():
            for task in job.tasks.values():
                for kind, table in (("input", task.sources or task.inputs),
                                    ("output", task.sinks or task.outputs)):  # fmt: skip
                    for name, where in table.items():
                        found.append({"job": job.name, "task": task.name, "what": kind,
                                      "name": name, "where": self._short(where)})  # fmt: skip
                if task.logs:
                    found.append({"job": job.name, "task": task.name, "what": "logs",
                                  "name": "", "where": self._short(task.logs)})  # fmt: skip
        return found

    def _short(self, where: str) -> str:
        """A path inside the project relative to it (as manifests write it); others as is."""
        if "://" in where:
            return where
        path = Path(where)
        return str(path.relative_to(self.path)) if path.is_relative_to(self.path) else where


class Projects:
    """Every project under `root`, reloaded when one of its files changes."""

    def __init__(self, root: Path | None) -> None:
        self.root = root.resolve() if root is not None else None
        self._loads: dict[tuple[Any, ...], tuple[Bundle | None, list[Diagnostic]]] = {}
        self._lock = threading.Lock()

    def folders(self) -> list[Path]:
        """Folders below the root (the root too) holding manifests, hidden ones left out."""
        if self.root is None or not self.root.is_dir():
            return []
        found = []
        for here, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if any(_is_manifest(f) for f in files):
                found.append(Path(here))
        return found

    def all(self) -> list[Project]:
        return [self._project(folder) for folder in self.folders()]

    def get(self, project_id: str) -> Project | None:
        if self.root is None:
            return None
        try:
            folder = (self.root / project_id).resolve()
        except (OSError, ValueError):  # a NUL byte, a loop of links
            return None
        # what `folders` would list, asked of this one folder (not a walk of the whole tree)
        if not folder.is_relative_to(self.root) or not folder.is_dir():
            return None
        if any(part.startswith(".") for part in folder.relative_to(self.root).parts):
            return None
        if not any(_is_manifest(f.name) and f.is_file() for f in folder.iterdir()):
            return None
        return self._project(folder)

    def load(self, files: list[str]) -> tuple[Bundle | None, list[Diagnostic]]:
        """`files` loaded as `runner validate` would (need no Job), cached until one changes."""
        key = tuple((f, *_stamp(Path(f))) for f in files)
        with self._lock:
            if key not in self._loads:
                try:
                    self._loads[key] = (api.validate(files, need_job=False), [])
                except UserError as e:
                    self._loads[key] = (None, e.diagnostics)
                if len(self._loads) > 256:  # old versions of edited files
                    self._loads.pop(next(iter(self._loads)))
            return self._loads[key]

    def _project(self, folder: Path) -> Project:
        assert self.root is not None
        files = sorted(f for f in folder.iterdir() if _is_manifest(f.name) and f.is_file())
        bundle, problems = self.load([str(f) for f in files])
        rel = folder.relative_to(self.root)
        return Project(str(rel), folder, files, bundle, problems)


def _is_manifest(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, -1)
    return (st.st_mtime_ns, st.st_size)


# -- the submit form ----------------------------------------------------------------------


@dataclass
class Field:
    """One input of the form: what it is called, how it is shown, its value, its problems."""

    name: str  # the form's field name: param.X, input.X, output.X, cluster, instances
    label: str
    widget: str  # text, number, select, checkbox-like select, readonly
    value: str = ""
    description: str = ""
    required: bool = False
    options: list[str] = field(default_factory=list)
    min: str | None = None
    max: str | None = None
    step: str | None = None
    placeholder: str = ""
    blank: bool = False  # a select offers "(default)": the parameter may be left out
    errors: list[str] = field(default_factory=list)


class Form:
    """The form for an App of a project: fields made from its typed parameters."""

    def __init__(self, project: Project, app: AppDoc) -> None:
        assert project.bundle is not None
        self.project = project
        self.app = app
        self.errors: list[str] = []  # problems that belong to no one field
        self.paths: set[str] = set()  # fields whose value is a path the App reads or writes
        spec = app.spec
        self.fields: list[Field] = []
        for pname, p in spec.params.items():
            default = "" if p.default is None else _text(p.default)
            f = Field(f"param.{pname}", pname, "text", default, p.description or "",
                      p.required and p.default is None)  # fmt: skip
            if not p.overridable:
                f.widget, f.required = "readonly", False
            elif p.type in ("enum", "bool"):
                f.widget = "select"
                f.options = list(p.values or []) if p.type == "enum" else ["true", "false"]
                f.blank = p.default is None and not p.required
            elif p.type in ("int", "float"):
                f.widget, f.min, f.max = "number", _bound(p.min), _bound(p.max)
                f.step = "1" if p.type == "int" else "any"
            elif p.type == "frames":
                f.placeholder = "1-10, 1,3,5-10"
            elif p.type == "uri":
                f.placeholder = "oss://bucket/prefix/"
            elif p.type == "path":
                f.placeholder = "a path, relative to the project folder"
                self.paths.add(f.name)
            f.description = " · ".join(x for x in (p.type, f.description) if x)
            self.fields.append(f)
        for label, table in (("input", spec.inputs), ("output", spec.outputs)):
            for name, io in table.items():
                self.fields.append(Field(
                    f"{label}.{name}", f"{label} {name}", "text", "",
                    " · ".join(x for x in (f"{label}: a folder of the project or a URI",
                                           io.description) if x),
                    required=True, placeholder="oss://bucket/prefix/ or a relative path",
                ))  # fmt: skip
        clusters = sorted(project.bundle.clusters)
        self.fields.append(Field("cluster", "cluster", "select", "",
                                 "where the instances run (none: this machine)",
                                 options=["", *clusters]))  # fmt: skip
        self.fields.append(Field("instances", "instances", "number", str(spec.instances or 1),
                                 "how many instances run in parallel", required=True,
                                 min="1", max="100000", step="1"))  # fmt: skip

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def fill(self, values: dict[str, str]) -> None:
        """The values a user sent (read-only ones keep the App's)."""
        for f in self.fields:
            if f.widget != "readonly" and f.name in values:
                f.value = values[f.name].strip()

    def manifest(self, job: str, user: str) -> tuple[str, dict[int, str]]:
        """The Job as YAML, and which line holds which field."""
        lines: dict[int, str] = {}
        out = [
            f"# submitted from the dashboard by {_plain(user)} at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            "apiVersion: runner/v1",
            "kind: Job",
            f"metadata: {{name: {_q(job)}}}",
            "spec:",
        ]

        def put(text: str, name: str | None = None) -> None:
            out.append(text)
            if name is not None:
                lines[len(out)] = name

        cluster = self.field("cluster")
        if cluster is not None and cluster.value:
            put(f"  cluster: {_q(cluster.value)}", "cluster")
        task = self.app.metadata.name
        put("  tasks:")
        put(f"    {_q(task)}:", "task")
        put(f"      app: {_q(task)}", "task")
        count = self.field("instances")
        if count is not None and count.value:
            number = count.value if re.fullmatch(r"-?[0-9]{1,9}", count.value) else _q(count.value)
            put(f"      instances: {number}", "instances")
        for section in ("param", "input", "output"):
            given = [f for f in self.fields if f.name.startswith(section + ".")
                     and f.widget != "readonly" and f.value != ""]  # fmt: skip
            if not given:
                continue
            put(f"      {section}s:")
            for f in given:
                put(f"        {_q(f.name.split('.', 1)[1])}: {_q(f.value)}", f.name)
        return "\n".join(out) + "\n", lines

    def place(self, problems: list[Diagnostic], file: str, lines: dict[int, str]) -> None:
        """Each problem at the field it is about: by the line it points at in the submitted
        file, else by a field it names; the rest above the form."""
        for d in problems:
            text = d.message + (f" ({d.hint})" if d.hint else "")
            target = lines.get(d.line or 0) if d.file == file else None
            if target in (None, "task"):
                named = {m.group(1) for m in _QUOTED.finditer(d.message)}
                target = next((f.name for f in self.fields
                               if f.name.split(".", 1)[-1] in named
                               and f.name.startswith(("param.", "input.", "output."))),
                              None)  # fmt: skip
            f = self.field(target) if target else None
            if f is not None:
                f.errors.append(text)
            elif d.file == file:
                self.errors.append(text)
            else:
                self.errors.append(f"{d.where()}: {text}")
        for f in self.fields:  # what the browser would have refused, if it had been asked
            if f.required and f.value == "" and not f.errors:
                f.errors.append(f"{f.label} is required")


def _bound(x: float | None) -> str | None:
    """A bound as people write it: 4, not 4.0."""
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else str(x)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_BREAKS = re.compile("[\x7f-\x9f\u2028\u2029\ufeff]")


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it), with what YAML
    reads as a line break or a byte-order mark escaped too: a value stays one value."""
    return _BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _plain(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]", "?", text)


def _outside(project: Path, value: str, state_dir: Path) -> str | None:
    """Why `value`, a path given in the form, may not be used (None if it may): a dashboard
    user reads and writes inside the project, never elsewhere on the server."""
    if "://" in value and not value.startswith("file://"):
        return None  # object storage: its own credentials decide
    text = value.removeprefix("file://")
    if Path(text).is_absolute() or "\x00" in text:
        return "give a path relative to the project folder (or a URI like oss://bucket/prefix/)"
    try:
        where = (project / text).resolve()
    except (OSError, ValueError):
        return "not a usable path"
    if not where.is_relative_to(project.resolve()):
        return "a path must stay inside the project folder"
    inner = where.relative_to(project.resolve()).parts
    if any(part.startswith(".") for part in inner) or where.is_relative_to(state_dir.resolve()):
        return "hidden folders (and the runner's state) are not for submissions"
    return None


def submit(form: Form, user: str, state_dir: Path) -> tuple[str | None, Path | None, list[str]]:
    """Write and check the submission: (job name, manifest file, files to apply); the job is
    None when the form has problems (they are on the form then)."""
    project = form.project
    confined = [f for f in form.fields if f.value and (
        f.name.startswith(("input.", "output.")) or f.name in form.paths)]  # fmt: skip
    for f in confined:
        why = _outside(project.path, f.value, state_dir)
        if why is not None:
            f.errors.append(f"{f.label}: {why}")
    if any(f.errors for f in form.fields):
        return None, None, []
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    job = f"{form.app.metadata.name[: 127 - len(stamp)]}-{stamp}"  # names are <= 128 long
    text, lines = form.manifest(job, user)
    path = project.path / f"{SUBMITTED}{job}.yaml"
    path.write_text(text)
    files = [str(f) for f in project.files] + [str(path)]
    problems: list[Diagnostic] = []
    try:
        api.validate(files)
    except UserError as e:
        problems = e.diagnostics
    missing = [f for f in form.fields if f.required and f.value == ""]
    if problems or missing:
        path.unlink()
        form.place(problems, str(path), lines)
        return None, None, files
    return job, path, files


def spawn_apply(
    files: list[str], job: str, state_dir: Path, cwd: Path, user: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """`runner apply FILES --job JOB` in a session of its own (it outlives the server), its
    output kept in the state folder."""
    # the child starts in `cwd`: a path relative to the server's folder would mean another
    # file there (a state folder nested in the project, the run never seen by the server)
    files = [str(Path(f).absolute()) for f in files]
    state_dir, cwd = state_dir.absolute(), cwd.absolute()
    out_dir = state_dir / "web"
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / f"apply-{job}-{int(time.time() * 1000)}.txt"
    env = public_env()
    env["RUNNER_USER"] = f"{user} (web)"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "apply", *files, "--job", job,
             "--state-dir", str(state_dir)],
            cwd=cwd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )  # fmt: skip
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it ends
    return proc, log
