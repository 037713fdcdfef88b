"""The `slurm` executor: each task's attempts become one array job on Slurm.

Cluster settings (all optional):

    executor: slurm
    queue: debug                 # the partition (sbatch -p)
    settings:
      cpus: 4                    # CPUs per instance (sbatch -c)
      memory: 4G                 # --mem
      walltime: "2:00:00"        # -t
      native: ["--account", "x"] # anything else for sbatch, as a list
      jobcomp_log: /var/log/slurm/jobcomp.log   # default: JobCompLoc from `scontrol show config`
      max_calls_per_minute: 60
      stuck_after: 600
      lost_after: 60

Polling is one `squeue` per cycle for every job. A job that left the queue without an exit
file is looked up with `scontrol show job` while Slurm remembers it (MinJobAge), then in the
job completion log (no slurmdbd needed). A cancelled job reports `ExitCode=0:0`, so its
`JobState` decides. See `runner.batch_scheduler` for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from runner.contracts import (
    Batch,
    BatchSchedulerExecutor,
    BatchSettings,
    QueueEntry,
    SchedulerError,
)

__all__ = ["SlurmExecutor", "parse_records", "parse_squeue"]

_RUNNING = {"R", "CG", "S", "ST", "SO", "RS", "SI"}


def parse_squeue(text: str) -> dict[tuple[str, int], QueueEntry]:
    """Lines of `squeue -h -r -o %F|%K|%t|%r` -> (array job id, task) -> entry."""
    out: dict[tuple[str, int], QueueEntry] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        job, task, state, reason = parts
        if state in _RUNNING:
            entry = QueueEntry("running", None if state == "R" else state)
        else:
            entry = QueueEntry("queued", f"{state}: {reason}" if reason else state)
        out[(job, int(task))] = entry
    return out


def _fields(line: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def parse_records(text: str, job_id: str) -> dict[int, tuple[int | None, str]]:
    """Lines of `scontrol -o show job` or of the jobcomp log -> task -> (exit code, what)."""
    out: dict[int, tuple[int | None, str]] = {}
    for line in text.splitlines():
        f = _fields(line)
        if f.get("ArrayJobId") != job_id or not f.get("ArrayTaskId", "").isdigit():
            continue
        state = f.get("JobState", "")
        if state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED"):
            continue
        code_s, _, signal_s = f.get("ExitCode", "0:0").partition(":")
        code, sig = int(code_s or 0), int(signal_s or 0)
        if state == "COMPLETED":
            result: int | None = code
        elif state in ("CANCELLED", "TIMEOUT", "PREEMPTED", "DEADLINE"):
            result = 128 + (sig or 9)
        elif state in ("NODE_FAIL", "BOOT_FAIL", "LAUNCH_FAILED", "OUT_OF_MEMORY"):
            result = None if state != "OUT_OF_MEMORY" else 128 + 9
        else:  # FAILED
            result = code or (128 + sig if sig else 1)
        out[int(f["ArrayTaskId"])] = (result, f"Slurm: {state}, ExitCode={code}:{sig}")
    return out


class SlurmSettings(BatchSettings):
    """A Cluster's `settings:` for Slurm."""

    cpus: int | None = Field(default=None, ge=1, description="CPUs per instance (sbatch -c)")
    jobcomp_log: str | None = Field(
        default=None, description="Slurm's job completion log (default: JobCompLoc from "
        "`scontrol show config`)",
    )


class SlurmExecutor(BatchSchedulerExecutor):
    """Array jobs through sbatch; one `squeue` per polling cycle."""

    name = "slurm"
    settings_model = SlurmSettings

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        assert isinstance(self.settings, SlurmSettings)
        self._jobcomp: str | None = self.settings.jobcomp_log

    def index_variable(self) -> str:
        return "SLURM_ARRAY_TASK_ID"

    def _scheduler_submit(self, script: Path, batch: Batch, count: int) -> str:
        s = self.settings
        assert isinstance(s, SlurmSettings)
        argv = [
            "sbatch", "--parsable", "-J", batch.name, f"--array=1-{count}",
            "-D", str(batch.folder), "-o", str(batch.folder / "slurm.%a.out"),
            "--export=ALL",
        ]  # fmt: skip
        if self.cluster.queue:
            argv += ["-p", self.cluster.queue]
        if s.cpus:
            argv += ["-c", str(s.cpus)]
        if s.memory:
            argv += [f"--mem={s.memory}"]
        if s.walltime:
            argv += ["-t", str(s.walltime)]
        argv += [str(a) for a in s.native]
        argv.append(str(script))
        said = self.run(argv).stdout.strip()
        match = re.match(r"(\d+)", said)
        if match is None:
            raise SchedulerError(f"sbatch printed no job id: {said!r}")
        return match.group(1)

    def _scheduler_queue(self) -> dict[tuple[str, int], QueueEntry]:
        return parse_squeue(self.run(["squeue", "-h", "-r", "-o", "%F|%K|%t|%r"]).stdout)

    def _jobcomp_log(self) -> str | None:
        if self._jobcomp is None:
            config = self.run(["scontrol", "show", "config"], check=False).stdout
            m = re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.M)
            self._jobcomp = m.group(1) if m else ""
        return self._jobcomp or None

    def _scheduler_accounting(self, job_id: str) -> dict[int, tuple[int | None, str]] | None:
        done = self.run(["scontrol", "-o", "show", "job", job_id], check=False)
        found = parse_records(done.stdout, job_id) if done.returncode == 0 else {}
        log = self._jobcomp_log()
        if log:
            try:
                with open(log, encoding="utf-8", errors="replace") as f:
                    text = "".join(line for line in f if f"ArrayJobId={job_id} " in line)
            except OSError:
                text = ""
            # the log may hold a task twice (completed, then cancelled at a restart): first wins
            for task, result in parse_records(text, job_id).items():
                found.setdefault(task, result)
        return found or None

    def cluster_status(self) -> str:
        """Nodes with CPUs, memory, load and state, and the partitions (sinfo)."""
        nodes = self.run(["sinfo", "-N", "-o", "%N %P %c %m %O %T"]).stdout
        return nodes + "\n" + self.run(["sinfo", "-s"]).stdout

    def _scheduler_cancel(self, job_id: str, indices: Sequence[int] | None) -> None:
        if indices is None:
            self.run(["scancel", job_id])
        else:
            self.run(["scancel", *(f"{job_id}_{i}" for i in indices)], check=False)
