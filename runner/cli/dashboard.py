"""`runner serve`: the web dashboard, an optional part found through an entry point like any
plugin (group `runner.commands`, name `serve`; plugins/runner-web registers it). The command
and its flags live here, so `runner serve --help` works, and says how to install the
dashboard, without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from runner import plugins
from runner.cli.options import StateDir, find_state_dir, output_for
from runner.errors import UserError

__all__ = ["serve"]

_MISSING = "the dashboard is an optional part: pip install -e plugins/runner-web"


def serve(
    path: Annotated[
        Path | None, typer.Argument(help="a folder of manifests (its .runner/ is served)")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port")] = 8080,
    state_dir: StateDir = None,
) -> None:
    """The web dashboard: runs, instances and logs, behind a login (package runner-web)."""
    from runner.api.results import Note

    server = _server()
    # resolved once: the dashboard hands these to applies it starts in other folders
    path = path.resolve() if path is not None else None
    where = (
        state_dir or (path / ".runner" if path is not None else find_state_dir(None))
    ).resolve()
    out = output_for()

    def say(text: str) -> None:
        out.show(Note(text))
        out.flush()  # a line someone (or a test) waits for before the server's first request

    server(state_dir=where, manifests=path, host=host, port=port, say=say)


def _server() -> Callable[..., Any]:
    """What the `serve` entry point names: serve(*, state_dir, manifests, host, port, say)."""
    if "serve" not in plugins.available("command"):
        raise UserError(_MISSING)
    try:
        server: Callable[..., Any] = plugins.load("command", "serve")
    except UserError as e:  # installed without what it needs (uvicorn, starlette)
        if isinstance(e.__cause__, ImportError):
            raise UserError(_MISSING) from None
        raise
    return server
