"""The conformance suites: what every plugin of each group must do, as pytest tests that the
plugin's own tests subclass (the way Snakemake's executor interface ships one).

- `executor`: `ExecutorConformance` (runs real commands: submit, poll in batches, cancel, logs);
- `kind`: `KindConformance` (a valid task of the kind, expanded, verified and explained the way
  the planner and the engine do it);
- `store`: `StoreConformance` (put, stat, list, get, delete round trips below a prefix).

Only tests import this package; it needs pytest, which runner itself does not (install the
`conformance` extra: `pip install 'runner[conformance]'`). Nothing here may be imported by the
runtime.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401  (the suites use it; say what to install before they fail)
except ImportError as e:  # pragma: no cover - the test tools always have pytest
    raise ImportError(
        "runner.conformance needs pytest, which runner itself does not install: "
        "pip install 'runner[conformance]'"
    ) from e

from runner.conformance.executor import ExecutorConformance
from runner.conformance.kind import KindConformance
from runner.conformance.store import StoreConformance

__all__ = ["ExecutorConformance", "KindConformance", "StoreConformance"]
