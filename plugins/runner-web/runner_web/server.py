"""`runner serve`, as the CLI finds it: the entry point `serve` of the group
`runner.commands`. The CLI owns the command and its flags and resolves the folders first;
this makes sure there is an account, says the first password once, and serves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["serve"]


def serve(
    *,
    state_dir: Path,
    manifests: Path | None,
    host: str,
    port: int,
    say: Callable[[str], None],
) -> None:
    """Serve the dashboard over `state_dir` (absolute) and the projects under `manifests`
    on host:port until interrupted; `say` tells the person who started it."""
    import uvicorn

    from runner_web.app import make_app
    from runner_web.auth import ensure_admin

    made = ensure_admin(state_dir)
    os.environ.pop("RUNNER_WEB_PASSWORD", None)  # used: nothing started from here gets it
    if made is not None:
        say(f"first start: user admin, password {made} (shown once; stored hashed in {state_dir})")
    say(f"serving {state_dir} on http://{host}:{port}/")
    uvicorn.run(make_app(state_dir, manifests=manifests), host=host, port=port, log_level="warning")
