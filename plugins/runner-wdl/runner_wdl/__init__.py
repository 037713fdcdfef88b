"""The `wdl` task kind (alias `gatk`): a WDL workflow as one instance of a task, run by an
embedded miniwdl engine with runner's container-less backend (`runner_wdl.backend`), on
whichever executor the task's cluster names (local, SGE, Slurm).

    tasks:
      germline:
        kind: wdl
        params:
          workflow: wdl/germline.wdl      # relative to the manifest, or a URI (https://,
                                          # oss://: fetched with its folder); imports resolved
          inputs: inputs/small.json       # a JSON or YAML file, or the mapping itself
          engine: miniwdl                 # or cromwell (with cromwell: {url: ...})
          backend: runner_host            # miniwdl's backend; docker_swarm, podman, ...
                                          # when a container engine is there
        outputs: {out: out/germline}      # each output copied to out/germline/<name>/

`runner validate` parses and type-checks the workflow with miniwdl and checks the inputs
against the workflow's (unknown name, wrong type, missing required, missing file). The
workflow's run folder is `.runner/wdl/<job>/<task>/<run>.<attempt>/` (miniwdl's
`workflow.log` and each call's stdout and stderr are there); the call cache is
`.runner/wdl/call-cache/`, so after a fixed failure the next apply redoes only the calls that
did not finish. The fingerprint covers the workflow's source (imports too), the inputs and
the size and time of every input file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import WDL
import yaml

from runner.contracts import (
    InstanceSpec,
    KindBase,
    StoreError,
    Task,
    UserError,
    default_state_dir,
    stage_input,
)
from runner_wdl.run import namespaced_inputs, read_inputs

__all__ = ["WDLKind"]

ENGINES = ("miniwdl", "cromwell")
Problem = tuple[str | None, str, str | None]


def _param(task: Task, name: str) -> Any:
    return task.params.get(name)


def _made_upstream(path: Path, upstream_outputs: Mapping[Path, str]) -> bool:
    """Whether `path` lies in an output folder of an upstream task (which makes it later)."""
    where = path.resolve()
    return any(where.is_relative_to(folder) for folder in upstream_outputs)


class WDLKind(KindBase):
    """One instance per task: the whole workflow; miniwdl schedules its calls."""

    # the workflow runs in this machine's Python (miniwdl); its calls pick their own images
    runs_in_image = False
    # expand() writes the command line itself and never reads `command:`; a task needs none
    default_command = None

    def __init__(self) -> None:
        self._docs: dict[tuple[str, int], Any] = {}
        self._fetched_paths: dict[str, Path] = {}

    # -- reading the workflow and its inputs ------------------------------------------------

    def _workflow_path(self, task: Task) -> Path:
        given = str(_param(task, "workflow"))
        if "://" in given and not given.startswith("file://"):
            return self._fetched(task, given)
        return (task.base_dir / given.removeprefix("file://")).resolve()

    def _fetched(self, task: Task, uri: str) -> Path:
        """A workflow at a URI, fetched with its folder (so that relative imports resolve)
        into the state directory's cache: http(s) with its imports, store URIs (oss://)
        through the store. Raises UserError when it cannot be fetched."""
        if uri in self._fetched_paths:
            return self._fetched_paths[uri]
        folder_uri, _, name = uri.rpartition("/")
        digest = hashlib.sha256(folder_uri.encode()).hexdigest()[:16]
        cache = default_state_dir(task.base_dir) / "cache" / "wdl" / digest
        try:
            if uri.startswith(("http://", "https://")):
                _fetch_with_imports(uri, cache / name)
            else:
                stage_input(folder_uri + "/", cache, read_only=False)
        except (StoreError, OSError, ValueError) as e:
            raise UserError(f"workflow {uri}: cannot fetch it: {e}") from None
        self._fetched_paths[uri] = cache / name
        return cache / name

    def _load(self, path: Path) -> Any:
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._docs:
            self._docs[key] = WDL.load(str(path))
        return self._docs[key]

    def _inputs(self, task: Task) -> dict[str, Any]:
        given = _param(task, "inputs")
        if given is None:
            return {}
        if isinstance(given, dict):
            return given
        return read_inputs(task.base_dir / str(given))

    def _inputs_base(self, task: Task) -> Path:
        """Relative paths in an inputs file are relative to that file; in a mapping, to the
        manifest."""
        given = _param(task, "inputs")
        if isinstance(given, str):
            return (task.base_dir / given).resolve().parent
        return task.base_dir

    # -- the kind contract --------------------------------------------------------------------

    def check(
        self, *, task: Task, upstream_outputs: Mapping[Path, str] | None = None
    ) -> list[Problem]:
        """Problems `runner validate` reports: (parameter or None, message, hint).
        `upstream_outputs`: output folders of the tasks this one depends on (folder -> task);
        an input file below one of them may not exist yet."""
        if _param(task, "workflow") is None:
            return [(None, "a wdl task needs the parameter 'workflow'", "the .wdl file")]
        out: list[Problem] = []
        engine = str(_param(task, "engine") or "miniwdl")
        if engine not in ENGINES:
            out.append(("engine", f"engine {engine!r} is not available", "miniwdl or cromwell"))
        url = self._cromwell_url(task)
        if engine == "cromwell" and not url.startswith(("http://", "https://")):
            out.append(
                ("cromwell", "engine cromwell needs the server's address", "cromwell: {url: URL}")
            )
        backend = _param(task, "backend")
        if backend is not None and str(backend) not in _backends():
            out.append(("backend", f"no miniwdl backend {backend!r}", ", ".join(_backends())))
        if _param(task, "options") is not None and engine != "cromwell":
            out.append(("options", "workflow options are for engine: cromwell", None))
        try:
            path = self._workflow_path(task)
        except UserError as e:
            return [*out, ("workflow", str(e), None)]
        if not path.is_file():
            return [*out, ("workflow", f"{path}: no such file", None)]
        try:
            doc = self._load(path)
        except WDL.Error.MultipleValidationErrors as e:
            return out + [("workflow", _positioned(x, task), None) for x in e.exceptions]
        except (WDL.Error.SyntaxError, WDL.Error.ValidationError, WDL.Error.ImportError) as e:
            return [*out, ("workflow", _positioned(e, task), None)]
        exe = doc.workflow or (doc.tasks[0] if len(doc.tasks) == 1 else None)
        if exe is None:
            return [*out, ("workflow", f"{path.name}: no workflow, and more than one task", None)]
        try:
            given = self._inputs(task)
        except (OSError, ValueError, yaml.YAMLError) as e:
            return [*out, ("inputs", f"cannot read the inputs: {e}", None)]
        try:
            env = WDL.values_from_json(
                given, exe.available_inputs, exe.required_inputs, namespace=exe.name
            )
        except WDL.Error.InputError as e:
            names = sorted(b.name for b in exe.available_inputs)
            return [*out, ("inputs", str(e), f"{exe.name}'s inputs: {', '.join(names)}")]
        base = self._inputs_base(task)
        missing: list[str] = []

        def look(v: Any) -> None:
            p = Path(v.value) if os.path.isabs(v.value) else base / v.value
            if not p.exists() and not _made_upstream(p, upstream_outputs or {}):
                missing.append(v.value)

        WDL.Value.rewrite_env_paths(env, look)
        out += [("inputs", f"input file {m!r}: no such file or folder", None) for m in missing]
        return out

    @staticmethod
    def _cromwell_url(task: Task) -> str:
        conf = _param(task, "cromwell")
        return str(conf.get("url", "")) if isinstance(conf, dict) else ""

    def _json_param(self, task: Task, name: str) -> Any:
        value = _param(task, name)
        if isinstance(value, str):
            return json.loads((task.base_dir / value).read_text())
        return value or {}

    def expand(self, *, task: Task) -> list[InstanceSpec]:
        path = self._workflow_path(task)
        given = self._inputs(task)
        named = _param(task, "inputs")
        if isinstance(named, str):  # a file (maybe big): its name, not its text, goes along
            inputs_args = ["--inputs-file", str((task.base_dir / named).resolve())]
        elif str(_param(task, "engine") or "miniwdl") == "cromwell":
            # Cromwell wants `workflow.input` keys, and paths it can open: absolute ones
            ready = namespaced_inputs(self._load(path), given, self._inputs_base(task))
            inputs_args = ["--inputs-json", json.dumps(ready, sort_keys=True)]
        else:
            inputs_args = ["--inputs-json", json.dumps(given, sort_keys=True),
                           "--base", str(self._inputs_base(task))]  # fmt: skip
        if str(_param(task, "engine") or "miniwdl") == "cromwell":
            argv = [
                sys.executable, "-m", "runner_wdl.cromwell", "--url", self._cromwell_url(task),
                "--workflow", str(path), *inputs_args,
                "--options-json", json.dumps(self._json_param(task, "options"), sort_keys=True),
                "--labels-json", json.dumps({"runner-job": task.job, "runner-task": task.name}),
            ]  # fmt: skip
        else:
            argv = [
                sys.executable, "-m", "runner_wdl.run", "--workflow", str(path), *inputs_args
            ]  # fmt: skip
        if _param(task, "backend") is not None and "runner_wdl.run" in argv:
            backend = str(_param(task, "backend"))
            # miniwdl's podman, but using images already here (built or loaded, on no registry)
            argv += ["--backend", "runner_podman" if backend == "podman" else backend]
        outputs = [v for v in task.outputs.values() if v]
        if outputs:
            argv += ["--out", outputs[0]]
        extra = {
            "workflow": _source_digest(self._load(path)),
            "inputs": hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest(),
            "files": self._files(task, given),
        }
        return [InstanceSpec(0, argv, dict(task.env), fingerprint_extra=extra)]

    def _files(self, task: Task, given: dict[str, Any]) -> str:
        """Size and time of every File and Directory input (by the workflow's types)."""
        doc = self._load(self._workflow_path(task))
        exe = doc.workflow or doc.tasks[0]
        base = self._inputs_base(task)
        seen: list[str] = []

        def note(v: Any) -> str:
            p = Path(v.value) if os.path.isabs(v.value) else base / v.value
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    continue
                seen.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
            return str(v.value)

        try:
            env = WDL.values_from_json(
                given, exe.available_inputs, exe.required_inputs, namespace=exe.name
            )
            WDL.Value.rewrite_env_paths(env, note)
        except WDL.Error.InputError:
            pass  # `runner validate` says what is wrong with them
        return hashlib.sha256("\n".join(seen).encode()).hexdigest()[:16]

    def verify(
        self, *, task: Task, instance: InstanceSpec, stdout: Path, stderr: Path
    ) -> str | None:
        outputs = [v for v in task.outputs.values() if v]
        if outputs and not (Path(outputs[0]) / "outputs.json").is_file():
            return f"the workflow ended without writing {outputs[0]}/outputs.json"
        return None

    def explain(self, *, task: Task, exit_code: int, stdout: Path, stderr: Path) -> str | None:
        """The innermost cause miniwdl gave for the failure."""
        try:
            text = stderr.read_text(errors="replace")
        except OSError:
            return None
        summary = re.findall(r"^runner-wdl: (call-.*|cromwell: .*)$", text, re.M)
        if summary:
            return summary[-1]
        found = re.findall(r"^.*(?:Error|error): .*$", text, re.M)
        return found[-1].strip() if found else None


_IMPORT = re.compile(r'^\s*import\s+"([^"]+)"', re.M)


def _fetch_with_imports(url: str, dest: Path, depth: int = 0) -> None:
    """Download a WDL document and, recursively, the documents it imports by relative URL,
    keeping their relative places."""
    if depth > 10:
        raise ValueError(f"{url}: imports nested more than 10 deep")
    with urllib.request.urlopen(url, timeout=60) as r:  # http(s) only: see the caller
        text = r.read().decode()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    for imported in _IMPORT.findall(text):
        if "://" not in imported and not imported.startswith("/"):
            _fetch_with_imports(
                urllib.parse.urljoin(url, imported), dest.parent / imported, depth + 1
            )


def _backends() -> list[str]:
    """miniwdl's container backends: its own, and plugins' (runner_host among them)."""
    from importlib.metadata import entry_points

    found = {e.name for e in entry_points(group="miniwdl.plugin.container_backend")}
    return sorted(found | {"docker_swarm", "podman", "singularity", "udocker"})


def _positioned(e: Any, task: Task) -> str:
    pos = getattr(e, "pos", None)
    if pos is None:
        return str(e)
    where = os.path.relpath(pos.abspath, task.base_dir) if pos.abspath else pos.uri
    message = str(e).split("\n")[0]
    return f"{where}:{pos.line}:{pos.column}: {message}"


def _source_digest(doc: Any) -> str:
    h = hashlib.sha256()
    todo, seen = [doc], set()
    while todo:
        d = todo.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        h.update(d.source_text.encode())
        todo.extend(i.doc for i in d.imports if i.doc is not None)
    return h.hexdigest()[:16]
