"""The top-level commands: validate, plan, apply, schema, runs, status, logs, cancel,
plugins, apps. Each parses its flags, calls the API and shows what comes back through an
`Output`; none formats a result itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.options import (
    ClusterOpt,
    Format,
    FormatOpt,
    Jobs,
    Paths,
    Sets,
    StateDir,
    find_state_dir,
    output_for,
)
from runner.errors import UserError

__all__ = ["app"]

app = typer.Typer(
    name="runner",
    help="Declarative pipeline runner: apply YAML manifests of Apps, Clusters and Jobs. "
    "Add --debug to any command for a traceback instead of a message.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
def validate(paths: Paths, sets: Sets = None, output: FormatOpt = Format.text) -> None:
    """Check manifests and report every problem with its file, line and column."""
    from runner import api

    output_for(output).show(api.Validated.of(api.validate(paths, sets or [])))


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
    output: FormatOpt = Format.text,
    jobs: Jobs = None,
    cluster: ClusterOpt = None,
) -> None:
    """Show, per task and instance, whether apply would run or skip it and why."""
    from runner import api

    found = api.plan(
        paths, sets=sets or [], state_dir=state_dir, force=force, rerun=rerun or [],
        jobs=jobs or [], cluster=cluster,
    )  # fmt: skip
    output_for(output).show(found)
    if detailed_exitcode and found.to_run:
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
    output: FormatOpt = Format.text,
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
        output=output_for(output),
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
    from runner.api.results import Note
    from runner.manifest.models import document_schema

    text = json.dumps(document_schema(), indent=2, sort_keys=True) + "\n"
    if check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            raise UserError(f"{out} is stale; regenerate it with `runner schema`")
        output_for().show(Note(f"{out} is up to date"))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    output_for().show(Note(f"wrote {out}"))


@app.command()
def runs(
    state_dir: StateDir = None,
    output: FormatOpt = Format.text,
    limit: Annotated[int, typer.Option(help="how many")] = 20,
) -> None:
    """List recent runs."""
    from runner import api

    output_for(output).show(api.runs(find_state_dir(state_dir), limit))


@app.command()
def status(
    run: Annotated[int | None, typer.Argument(help="run id (default: the latest)")] = None,
    state_dir: StateDir = None,
    output: FormatOpt = Format.text,
) -> None:
    """Tasks and instances of a run, with state and reason."""
    from runner import api

    output_for(output).show(api.status(find_state_dir(state_dir), run))


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
    from runner import api

    task, _, idx_text = target.partition("/")
    if idx_text and not idx_text.isdigit():
        raise UserError(f"{target!r}: the instance must be a number, like {task}/0")
    idx = int(idx_text or 0)
    if stream not in ("out", "err", "both"):
        raise UserError(f"--stream {stream!r}: use out, err or both")
    where = find_state_dir(state_dir)
    out = output_for()
    if follow:
        for chunk in api.follow_log(where, run, task, idx, attempt, stream):
            out.raw(chunk)
        return
    found = api.log(where, run, task, idx, attempt, stream)
    for s in found.streams:
        data = api.read_log(s)
        if stream == "both" and data:
            out.show(api.LogHeading(s, found.task, found.idx, found.attempt))
        out.raw(data)


@app.command()
def cancel(run: Annotated[int, typer.Argument(help="run id")], state_dir: StateDir = None) -> None:
    """Cancel a running run from another terminal."""
    from runner import api

    output_for().show(api.cancel(find_state_dir(state_dir), run))


@app.command()
def plugins(output: FormatOpt = Format.text) -> None:
    """Executors, task kinds and stores that are installed, and from which package."""
    from runner.api.results import PluginList
    from runner.plugins import discovered

    output_for(output).show(PluginList(tuple(discovered())))


@app.command()
def apps(paths: Paths, output: FormatOpt = Format.text) -> None:
    """The Apps of manifests with their revision: image, tag and the image's ID here."""
    from runner import api

    output_for(output).show(api.apps(paths))
