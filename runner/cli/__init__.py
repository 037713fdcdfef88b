"""The `runner` command line (Typer): the commands assembled from their modules, and `main`,
which turns what goes wrong into exit codes and messages.

Exit codes: 0 success (or nothing to do), 1 task failures, 2 user error (bad manifest, bad
flag, job locked), 130 cancelled. `plan --detailed-exitcode`: 0 nothing to do, 2 work to do,
1 error. User errors are never tracebacks unless `--debug` is given.

- `commands`: validate, plan, apply, schema, runs, status, logs, cancel, plugins, apps;
- `oss`, `cluster`: the `runner oss` and `runner cluster` sub-commands;
- `dashboard`: `runner serve`, found through an entry point;
- `options`: what the commands share (flags, the state folder, the output).
"""

from __future__ import annotations

import sys

from typer.exceptions import Abort as _Abort
from typer.exceptions import TyperException

from runner.cli import cluster, dashboard, oss
from runner.cli.commands import app
from runner.cli.options import Format, asked_format, forget_format
from runner.errors import UserError, render_json, render_text

__all__ = ["app", "main"]

# in the order `runner --help` lists them
app.add_typer(oss.app, name="oss")
app.command()(dashboard.serve)
app.add_typer(cluster.app, name="cluster")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into exit code 2 without tracebacks."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    # `plan --detailed-exitcode` keeps 2 for "work to do": an error there is 1, as in terraform
    error_code = 1 if "--detailed-exitcode" in args else 2
    forget_format()
    try:
        rv = app(args=args, prog_name="runner", standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        if asked_format() == Format.json:
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
