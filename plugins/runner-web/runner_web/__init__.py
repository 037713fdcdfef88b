"""runner's web dashboard: `runner serve`. See `runner_web.app`."""

from runner_web.app import make_app

__all__ = ["make_app"]
