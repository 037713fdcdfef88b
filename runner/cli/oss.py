"""`runner oss`: look at object storage (list, copy, print), for any store URI."""

from __future__ import annotations

from typing import Annotated

import typer

from runner.cli.options import Format, FormatOpt, output_for
from runner.errors import UserError

__all__ = ["app"]

app = typer.Typer(
    help="Look at object storage: list, copy, print. Works for any store URI (oss://, file).",
    no_args_is_help=True,
)


@app.command("ls")
def oss_ls(
    uri: Annotated[str, typer.Argument(help="oss://BUCKET/PREFIX/ (or an object)")],
    output: FormatOpt = Format.text,
) -> None:
    """Objects below a prefix: size, ETag and key."""
    from runner import api

    found = api.objects(uri)
    output_for(output).show(found)
    # an empty list is an answer for a program; a person who named nothing is told so
    if not found.objects and output != Format.json:
        raise UserError(f"{uri}: no such object or prefix")


@app.command("cp")
def oss_cp(
    src: Annotated[str, typer.Argument(help="a local file or folder, or a URI")],
    dest: Annotated[str, typer.Argument(help="a URI (prefix ending in /), or a local path")],
) -> None:
    """Copy one way or the other; a folder or prefix goes whole, in parallel, verified."""
    from runner import api

    output_for().show(api.copy(src, dest))


@app.command("cat")
def oss_cat(uri: Annotated[str, typer.Argument(help="oss://BUCKET/KEY")]) -> None:
    """Print an object."""
    from runner import api

    out = output_for()
    for block in api.object_bytes(uri):
        out.raw(block)
