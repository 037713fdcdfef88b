"""The slurm executor passes the core's executor conformance suite on a real Slurm
(started by scripts/schedulers, which the test command runs)."""

from __future__ import annotations

from runner_slurm import SlurmExecutor

from runner.conformance import ExecutorConformance
from runner.contracts import Cluster, Executor


class TestSlurmExecutor(ExecutorConformance):
    """Array jobs on the single-node Slurm cluster of this machine."""

    timeout = 90.0

    def make_executor(self) -> Executor:
        return SlurmExecutor(cluster=Cluster("conformance", "slurm", 2, None, {}))
