"""The sge executor passes the core's executor conformance suite on a real Grid Engine
(started by scripts/schedulers, which the test command runs)."""

from __future__ import annotations

from runner_sge import SGEExecutor

from runner.conformance import ExecutorConformance
from runner.contracts import Cluster, Executor


class TestSGEExecutor(ExecutorConformance):
    """Array jobs on the single-node SGE cell of this machine."""

    timeout = 90.0

    def make_executor(self) -> Executor:
        return SGEExecutor(cluster=Cluster("conformance", "sge", 2, None, {}))
