"""The local executor passes the core's executor conformance suite."""

from __future__ import annotations

from runner_local import LocalExecutor

from runner.conformance import ExecutorConformance
from runner.contracts import Cluster, Executor


class TestLocalExecutor(ExecutorConformance):
    """Real processes on this machine."""

    def make_executor(self) -> Executor:
        """A local executor with two slots."""
        return LocalExecutor(cluster=Cluster("conformance", "local", 2, None, {}))
