"""The `runner` command line (Typer).

Exit codes: 0 success (or nothing to do), 1 task failures, 2 user error (bad manifest, bad
flag, job locked), 130 cancelled. `plan --detailed-exitcode`: 0 nothing to do, 2 work to do,
1 error. User errors are never tracebacks unless `--debug` is given.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.exceptions import Abort as _Abort
from typer.exceptions import TyperException

from runner.errors import UserError, render_json, render_text

__all__ = ["app", "main"]

app = typer.Typer(
    name="runner",
    help="Declarative pipeline runner: apply YAML manifests of Apps, Clusters and Jobs. "
    "Add --debug to any command for a traceback instead of a message.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Output(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"


Paths = Annotated[list[str], typer.Argument(help="manifest files or directories of *.yaml")]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a parameter: TASK.PARAM=VALUE (repeatable)"),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="state directory (default: .runner/ beside the manifest, or $RUNNER_STATE_DIR)",
    ),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text or json")]
Jobs = Annotated[
    list[str] | None,
    typer.Option("--job", help="only this job of the manifests (repeatable; default: all)"),
]
ClusterOpt = Annotated[
    str | None,
    typer.Option("--cluster", help="run every task on this Cluster of the manifests instead "
                 "of the one it names"),
]


def _state_dir(given: Path | None) -> Path:
    """--state-dir, $RUNNER_STATE_DIR, ./.runner, or the one .runner/ found below here."""
    import os

    if given is not None:
        return given
    if os.environ.get("RUNNER_STATE_DIR"):
        return Path(os.environ["RUNNER_STATE_DIR"])
    here = Path(".runner")
    if (here / "state.db").exists():
        return here
    found = sorted(
        {
            p.parent
            for pattern in ("*/.runner/state.db", "*/*/.runner/state.db", "*/*/*/.runner/state.db")
            for p in Path.cwd().glob(pattern)
        }
    )
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(str(f.relative_to(Path.cwd())) for f in found)
        raise UserError(
            f"several state directories below here ({listed}); choose one with --state-dir"
        )
    return here


@app.command()
def validate(paths: Paths, sets: Sets = None, output: OutputOpt = Output.text) -> None:
    """Check manifests and report every problem with its file, line and column."""
    from runner import api

    bundle = api.validate(paths, sets or [])
    tasks = sum(len(j.tasks) for j in bundle.jobs.values())
    if output == Output.json:
        print(json.dumps({"errors": [], "jobs": sorted(bundle.jobs), "tasks": tasks}))
    else:
        print(
            f"ok: {len(bundle.files)} file(s), {bundle.documents} document(s), "
            f"{len(bundle.jobs)} job(s), {tasks} task(s)"
        )


@app.command()
def plan(
    paths: Paths,
    sets: Sets = None,
    state_dir: StateDir = None,
    force: Annotated[bool, typer.Option("--force", help="plan every instance to run")] = False,
    rerun: Annotated[
        list[str] | None, typer.Option("--rerun", help="rerun TASK (and downstream)")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="exit 0: nothing to do, 2: work to do")
    ] = False,
    output: OutputOpt = Output.text,
    jobs: Jobs = None,
    cluster: ClusterOpt = None,
) -> None:
    """Show, per task and instance, whether apply would run or skip it and why."""
    from runner import api

    _, plans = api.plan(
        paths, sets=sets or [], state_dir=state_dir, force=force, rerun=rerun or [],
        jobs=jobs or [], cluster=cluster,
    )  # fmt: skip
    if output == Output.json:
        print(json.dumps(api.plan_as_json(plans), indent=1))
    else:
        api.print_plan(plans, sys.stdout, per_instance=True)
        todo = sum(jp.to_run for jp in plans)
        print(
            f"Plan: {todo} instance(s) to run, {sum(jp.total for jp in plans) - todo} up to date."
        )
    if detailed_exitcode and any(jp.to_run for jp in plans):
        raise typer.Exit(2)


@app.command()
def apply(
    paths: Paths,
    sets: Sets = None,
    state_dir: StateDir = None,
    force: Annotated[bool, typer.Option("--force", help="run every instance again")] = False,
    rerun: Annotated[
        list[str] | None, typer.Option("--rerun", help="rerun TASK (and downstream)")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="stop everything at the first failure")
    ] = False,
    output: OutputOpt = Output.text,
    jobs: Jobs = None,
    cluster: ClusterOpt = None,
) -> None:
    """Run what is not done yet; skip what is; record everything."""
    from runner import api

    code = api.apply(
        paths,
        sets=sets or [],
        state_dir=state_dir,
        force=force,
        rerun=rerun or [],
        fail_fast=fail_fast,
        output=output.value,
        jobs=jobs or [],
        cluster=cluster,
    )
    raise typer.Exit(code)


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="where to write it")] = Path(
        "schemas/manifest.schema.json"
    ),
    check: Annotated[bool, typer.Option("--check", help="fail if the file is stale")] = False,
) -> None:
    """Write the JSON Schema of manifest documents (for editor completion)."""
    from runner.manifest.models import document_schema

    text = json.dumps(document_schema(), indent=2, sort_keys=True) + "\n"
    if check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            raise UserError(f"{out} is stale; regenerate it with `runner schema`")
        print(f"{out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


@app.command()
def runs(
    state_dir: StateDir = None,
    output: OutputOpt = Output.text,
    limit: Annotated[int, typer.Option(help="how many")] = 20,
) -> None:
    """List recent runs."""
    from runner.api import open_state, shown_state, took, when

    state = open_state(_state_dir(state_dir))
    rows = state.runs(limit)
    state.close()
    for r in rows:
        r["state"] = shown_state(r)
    if output == Output.json:
        print(json.dumps(rows, indent=1))
        return
    if not rows:
        print("no runs yet")
    for r in rows:
        commit = f" git {r['git_commit'][:12]}" if r["git_commit"] else ""
        commit += f" by {r['user']}" if r["user"] else ""
        print(
            f"{r['id']:>5}  {r['job']:<20} {r['state']:<12} {when(r['started_at'])}  "
            f"{took(r['started_at'], r['ended_at']):>8}{commit}"
        )


@app.command()
def status(
    run: Annotated[int | None, typer.Argument(help="run id (default: the latest)")] = None,
    state_dir: StateDir = None,
    output: OutputOpt = Output.text,
) -> None:
    """Tasks and instances of a run, with state and reason."""
    from runner.api import open_state, shown_state, took, when

    state = open_state(_state_dir(state_dir))
    try:
        r = state.run(run)
        if r is None:
            raise UserError(f"no run {run}" if run is not None else "no runs yet")
        if shown_state(r) != r["state"]:
            r["state"] = shown_state(r)
            r["reason"] = f"runner pid {r['pid']} is gone; `runner apply` finishes the job"
        tasks = state.tasks(r["id"])
        instances = state.instances(r["id"])
        # the attempts worth a line: earlier ones that failed, and ones still waiting
        attempts = {
            (i["task"], i["idx"]): state.attempts(r["id"], i["task"], i["idx"])
            for i in instances
            if i["attempts"] > 1 or i["state"] in ("queued", "running")
        }
    finally:
        state.close()
    if output == Output.json:
        print(json.dumps({"run": r, "tasks": tasks, "instances": instances}, indent=1))
        return
    print(
        f"run {r['id']}: job {r['job']} {r['state']}"
        + (f" ({r['reason']})" if r["reason"] else "")
        + f", started {when(r['started_at'])}, {took(r['started_at'], r['ended_at'])}"
    )
    by_task: dict[str, list[dict[str, Any]]] = {}
    for i in instances:
        by_task.setdefault(i["task"], []).append(i)
    for t in tasks:
        print(f"  {t['task']:<20} {t['state']:<16}" + (f" {t['reason']}" if t["reason"] else ""))
        for i in by_task.get(t["task"], []):
            code = f" exit {i['exit_code']}" if i["exit_code"] is not None else ""
            tries = f" attempts {i['attempts']}" if i["attempts"] else ""
            print(
                f"    [{i['idx']}] {i['state']:<16}{code}{tries}"
                + (f"  {i['reason']}" if i["reason"] else "")
            )
            for a in attempts.get((i["task"], i["idx"]), []):
                if a["reason"] and (a["attempt"] < i["attempts"] or a["state"] == "queued"):
                    print(f"        attempt {a['attempt']} {a['state']}: {a['reason']}")


@app.command()
def logs(
    run: Annotated[int, typer.Argument(help="run id")],
    target: Annotated[str, typer.Argument(help="TASK or TASK/INSTANCE")],
    attempt: Annotated[
        int | None, typer.Option("--attempt", help="attempt number (default: last)")
    ] = None,
    stream: Annotated[str, typer.Option("--stream", help="out, err or both")] = "both",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing while it runs")
    ] = False,
    state_dir: StateDir = None,
) -> None:
    """Print an attempt's stdout and stderr."""
    from runner.api import open_state

    task, _, idx_text = target.partition("/")
    if idx_text and not idx_text.isdigit():
        raise UserError(f"{target!r}: the instance must be a number, like {task}/0")
    idx = int(idx_text or 0)
    if stream not in ("out", "err", "both"):
        raise UserError(f"--stream {stream!r}: use out, err or both")
    state = open_state(_state_dir(state_dir))
    try:
        if state.run(run) is None:
            raise UserError(f"no run {run}; see `runner runs`")
        if follow:
            _follow(state, run, task, idx, attempt, stream)
            return
        attempts = state.attempts(run, task, idx)
        if not attempts:
            known = sorted({i["task"] for i in state.instances(run)})
            raise UserError(
                f"run {run} has no attempt of {task}/{idx}"
                + (f"; tasks in this run: {', '.join(known)}" if known else "")
            )
        chosen = (
            attempts[-1]
            if attempt is None
            else next((a for a in attempts if a["attempt"] == attempt), None)
        )
        if chosen is None:
            raise UserError(
                f"{task}/{idx} in run {run} has attempts 1..{len(attempts)}, not {attempt}"
            )
        copies = state.log_copies(run, task, idx, chosen["attempt"])
        for name, path in _streams(chosen, stream):
            data = path.read_bytes() if path.exists() else _stored_log(copies.get(name))
            if stream == "both" and data:
                print(
                    f"==> {name} of {task}/{idx} attempt {chosen['attempt']} ({path}) <==",
                    flush=True,
                )
            _write_bytes(data)
    finally:
        state.close()


def _write_bytes(data: bytes) -> None:
    """Log bytes to stdout as they are (decoded only where stdout has no byte layer)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()
    else:
        sys.stdout.write(data.decode(errors="replace"))


def _stored_log(uri: str | None) -> bytes:
    """A log stream from where the run stored it (another machine's run, say)."""
    if uri is None:
        return b""
    import tempfile

    from runner.stores import StoreError, store_for

    with tempfile.TemporaryDirectory() as tmp:
        try:
            store_for(uri).get(uri, Path(tmp) / "log")
        except StoreError as e:
            raise UserError(f"log not readable here or at {uri}: {e}") from None
        return (Path(tmp) / "log").read_bytes()


def _streams(attempt: dict[str, Any], stream: str) -> list[tuple[str, Path]]:
    return [
        (name, Path(attempt[name])) for name in ("stdout", "stderr") if stream in ("both", name[3:])
    ]


def _follow(state: Any, run: int, task: str, idx: int, only: int | None, stream: str) -> None:
    """Print output as it is written: waits for the instance to start, and goes on through
    its retries (or only attempt `only`) until it ends or the run does."""
    from runner.api import shown_state

    offsets: dict[Path, int] = {}
    while True:
        # read the state first, then the files: what was written before "done" is all shown
        r = state.run(run)
        rows = [i for i in state.instances(run, task) if i["idx"] == idx]
        if r is None or not rows:
            raise UserError(f"run {run} has no instance {task}/{idx}")
        settled = rows[0]["state"] not in ("pending", "queued", "running", "retrying")
        attempts = [a for a in state.attempts(run, task, idx) if only in (None, a["attempt"])]
        for a in attempts:
            for _, path in _streams(a, stream):
                if path.exists():
                    with open(path, "rb") as f:
                        f.seek(offsets.get(path, 0))
                        chunk = f.read()
                    offsets[path] = offsets.get(path, 0) + len(chunk)
                    _write_bytes(chunk)
        if only is not None and attempts and attempts[0]["state"] != "running":
            return
        if settled or shown_state(r) != "running":
            return
        time.sleep(0.2)


@app.command()
def cancel(run: Annotated[int, typer.Argument(help="run id")], state_dir: StateDir = None) -> None:
    """Cancel a running run from another terminal."""
    from runner import api

    print(api.cancel(_state_dir(state_dir), run))


@app.command()
def plugins(output: OutputOpt = Output.text) -> None:
    """Executors, task kinds and stores that are installed, and from which package."""
    from dataclasses import asdict

    from runner.plugins import discovered

    found = discovered()
    if output == Output.json:
        print(json.dumps([asdict(p) for p in found], indent=1))
        return
    for p in found:
        print(f"{p.group:<9} {p.name:<12} {p.distribution} {p.version}  ({p.value})")


@app.command()
def apps(paths: Paths, output: OutputOpt = Output.text) -> None:
    """The Apps of manifests with their revision: image, tag and the image's ID here."""
    from runner.containers import local_image
    from runner.manifest.loader import load

    rows = []
    for name, a in load(paths, need_job=False).apps.items():
        image = a.spec.image
        tag = image_id = None
        if image is not None:
            ref, at, _ = image.partition("@")  # name[:tag][@sha256:digest]
            last = ref.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else ("(by digest)" if at else "latest")
            image_id = local_image(image, a.spec.runtime)
        rows.append({"app": name, "kind": a.spec.kind, "image": image, "tag": tag,
                     "id": image_id, "description": a.metadata.description})  # fmt: skip
    if output == Output.json:
        print(json.dumps(rows, indent=1))
        return
    if not rows:
        print("no Apps in these manifests")
    for r in rows:
        if r["image"] is None:
            print(f"{r['app']:<24} {r['kind']:<8} (no image: runs on the host)")
        else:
            here = (r["id"] or "").removeprefix("sha256:")[:12] or "not here (pulled when run)"
            print(f"{r['app']:<24} {r['kind']:<8} {r['image']}  tag {r['tag']}  id {here}")


oss_app = typer.Typer(
    help="Look at object storage: list, copy, print. Works for any store URI (oss://, file).",
    no_args_is_help=True,
)
app.add_typer(oss_app, name="oss")


@app.command()
def serve(
    path: Annotated[
        Path | None, typer.Argument(help="a folder of manifests (its .runner/ is served)")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port")] = 8080,
    state_dir: StateDir = None,
) -> None:
    """The web dashboard: runs, instances and logs, behind a login (package runner-web)."""
    import importlib

    try:  # an optional part, imported by name: the core does not depend on it
        uvicorn: Any = importlib.import_module("uvicorn")
        web: Any = importlib.import_module("runner_web")
        auth: Any = importlib.import_module("runner_web.auth")
    except ImportError:
        raise UserError(
            "the dashboard is an optional part: pip install -e plugins/runner-web"
        ) from None
    # resolved once: the dashboard hands these to applies it starts in other folders
    path = path.resolve() if path is not None else None
    where = (state_dir or (path / ".runner" if path is not None else _state_dir(None))).resolve()
    made = auth.ensure_admin(where)
    import os

    os.environ.pop("RUNNER_WEB_PASSWORD", None)  # used: nothing started from here gets it
    if made is not None:
        print(f"first start: user admin, password {made} (shown once; stored hashed in {where})")
    print(f"serving {where} on http://{host}:{port}/")
    uvicorn.run(web.make_app(where, manifests=path), host=host, port=port, log_level="warning")


cluster_app = typer.Typer(
    help="The clusters manifests describe: show their hosts and load; create and resize "
    "their host groups.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")

ClusterName = Annotated[
    str | None, typer.Option("--name", help="the Cluster document (default: every one)")
]


def _clusters(paths: list[str], name: str | None) -> list[Any]:
    from runner.manifest.loader import load

    clusters = load(paths, need_job=False).clusters
    if name is not None:
        if name not in clusters:
            raise UserError(f"no Cluster {name!r} in {', '.join(paths)}")
        return [clusters[name]]
    if not clusters:
        raise UserError(f"no Cluster document in {', '.join(paths)}")
    return list(clusters.values())


def _cluster_call(cluster: Any, method: str) -> Any:
    from runner.batch_scheduler import SchedulerError
    from runner.engine import load_executor

    ex = load_executor(cluster)
    call = getattr(ex, method, None)
    if call is None:
        raise UserError(
            f"cluster {cluster.name!r}: the {cluster.executor} executor has no `{method}`"
            + (" (groups are managed on SGE only)" if method == "cluster_apply" else "")
        )
    try:
        return call()
    except SchedulerError as e:
        raise UserError(f"cluster {cluster.name!r}: {e}") from None


@cluster_app.command("status")
def cluster_status(
    paths: Annotated[list[str], typer.Argument(help="manifests with Cluster documents")],
    name: ClusterName = None,
) -> None:
    """Hosts, slots and load of each cluster (qhost and qstat -g c; sinfo)."""
    for cluster in _clusters(paths, name):
        print(f"== cluster {cluster.name} ({cluster.executor})")
        print(_cluster_call(cluster, "cluster_status").rstrip())


@cluster_app.command("apply")
def cluster_apply(
    paths: Annotated[list[str], typer.Argument(help="manifests with Cluster documents")],
    name: ClusterName = None,
) -> None:
    """Create or resize each cluster's `groups` (SGE: host group @NAME, queue NAME.q)."""
    for cluster in _clusters(paths, name):
        if not cluster.groups:
            print(f"cluster {cluster.name}: no groups to apply")
            continue
        changes = _cluster_call(cluster, "cluster_apply")
        for change in changes or ["unchanged"]:
            print(f"cluster {cluster.name}: {change}")


def _store_call(what: Any) -> Any:
    from runner.stores import StoreError

    try:
        return what()
    except StoreError as e:
        raise UserError(str(e)) from None


@oss_app.command("ls")
def oss_ls(
    uri: Annotated[str, typer.Argument(help="oss://BUCKET/PREFIX/ (or an object)")],
    output: OutputOpt = Output.text,
) -> None:
    """Objects below a prefix: size, ETag and key."""
    from runner.stores import store_for

    store = store_for(uri)
    found = _store_call(lambda: store.list(uri if uri.endswith("/") else uri + "/"))
    if not found and not uri.endswith("/"):
        one = _store_call(lambda: store.stat(uri))
        found = [one] if one else []
    if output == Output.json:
        print(json.dumps([o.__dict__ for o in found], indent=1))
        return
    for o in found:
        print(f"{o.size:>12}  {o.etag:<36}  {o.key}")
    if not found:
        raise UserError(f"{uri}: no such object or prefix")


@oss_app.command("cp")
def oss_cp(
    src: Annotated[str, typer.Argument(help="a local file or folder, or a URI")],
    dest: Annotated[str, typer.Argument(help="a URI (prefix ending in /), or a local path")],
) -> None:
    """Copy one way or the other; a folder or prefix goes whole, in parallel, verified."""
    from runner.stores import is_remote, stage_input, store_for, upload_dir

    if is_remote(src) and not is_remote(dest):
        target = Path(dest)
        if src.endswith("/"):
            n = _store_call(lambda: stage_input(src, target, read_only=False)).fetched
        else:
            if target.is_dir():
                target = target / src.rstrip("/").rsplit("/", 1)[-1]
            _store_call(lambda: store_for(src).get(src, target))
            n = 1
        print(f"{n} object(s) copied to {target}")
    elif is_remote(dest) and not is_remote(src):
        path = Path(src)
        if path.is_dir():
            n = _store_call(lambda: upload_dir(path, dest))
        elif path.is_file():
            key = dest + path.name if dest.endswith("/") else dest
            _store_call(lambda: store_for(key).put(path, key))
            n = 1
        else:
            raise UserError(f"{src}: no such file or folder")
        print(f"{n} file(s) copied to {dest}")
    else:
        raise UserError("copy between a local path and a URI (one of each)")


@oss_app.command("cat")
def oss_cat(uri: Annotated[str, typer.Argument(help="oss://BUCKET/KEY")]) -> None:
    """Print an object."""
    import tempfile

    from runner.stores import store_for

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "object"
        _store_call(lambda: store_for(uri).get(uri, target))
        sys.stdout.flush()
        with target.open("rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                sys.stdout.buffer.write(block)
        sys.stdout.flush()


def _wants_json(argv: list[str]) -> bool:
    for i, a in enumerate(argv):
        if a in ("--output=json", "-ojson"):
            return True
        if a in ("--output", "-o") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into exit code 2 without tracebacks."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    # `plan --detailed-exitcode` keeps 2 for "work to do": an error there is 1, as in terraform
    error_code = 1 if "--detailed-exitcode" in args else 2
    try:
        rv = app(args=args, prog_name="runner", standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        if _wants_json(args):
            print(render_json(e.diagnostics))
        else:
            print(render_text(e.diagnostics), file=sys.stderr)
        sys.exit(error_code)
    except _Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as e:  # usage errors: bad flags, missing arguments
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(error_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as e:
        if debug:
            raise
        # a bug in runner, not in the manifest: say so without dumping locals (secrets)
        print(
            f"runner: internal error: {type(e).__name__}: {e}\n"
            "  run again with --debug for the traceback, and please report it",
            file=sys.stderr,
        )
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)
