"""The `sge` executor: each task's attempts become one array job on (Son of) Sun Grid Engine.

Cluster settings (all optional):

    executor: sge
    queue: all.q                 # qsub -q
    settings:
      pe: smp                    # parallel environment for `slots` (qsub -pe smp N)
      slots: 4                   # slots per instance
      memory: 4G                 # -l h_vmem=4G
      walltime: "2:00:00"        # -l h_rt=2:00:00
      native: ["-P", "proj"]     # anything else for qsub, as a list
      max_calls_per_minute: 60   # scheduler commands (qstat, qacct, ...) at most per minute
      stuck_after: 600           # seconds queued before an attempt is given up (default: never)
      lost_after: 60             # seconds gone from the queue without a record before "lost"

Jobs are submitted with `-V` (the runner's environment), `-S /bin/bash` (SGE ignores a
script's first line) and a name (`-N`, always: SGE's default name can fail obscurely). The
scheduler's own output for array task i is `<batch folder>/sge.i.out`; the attempt's stdout
and stderr are at the engine's paths. See `runner.batch_scheduler` for how polling works.
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from runner.contracts import (
    Batch,
    BatchSchedulerExecutor,
    BatchSettings,
    QueueEntry,
    SchedulerError,
    UserError,
)

__all__ = ["SGEExecutor", "parse_qacct", "parse_qstat", "parse_tasks"]


def parse_tasks(text: str) -> list[int]:
    """`1-7:2,9` -> [1, 3, 5, 7, 9] (qstat's array task notation)."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        out.extend(range(int(first), int(last or first) + 1, int(step or 1)))
    return out


_WAIT_STATES = {
    "qw": "waiting for a slot",
    "hqw": "on hold",
    "t": "being transferred to its host",
    "Eqw": "in error state (qstat -j shows why)",
}


_QUEUE_STATES = {
    "u": "unknown: its execution daemon does not answer",
    "d": "disabled",
    "D": "disabled by its calendar",
    "E": "in error",
    "a": "over its load threshold",
    "s": "suspended",
    "S": "subordinated",
    "C": "suspended by its calendar",
    "o": "orphaned",
    "c": "ambiguously configured",
}


def parse_qstat(xml_text: str) -> dict[tuple[str, int], QueueEntry]:
    """`qstat -f -xml` -> (job id, task) -> entry, for array jobs. When no queue instance
    can take work (execution daemon down, disabled, in error), waiting jobs say so: `qstat`
    keeps answering while they wait forever."""
    out: dict[tuple[str, int], QueueEntry] = {}
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise SchedulerError(f"qstat -xml printed what is not XML: {e}") from None
    usable, unusable = False, []
    for queue in root.iter("Queue-List"):
        state = queue.findtext("state") or ""
        bad = [c for c in state if c in _QUEUE_STATES]
        if bad:
            meaning = ", ".join(_QUEUE_STATES[c] for c in bad)
            unusable.append(f"{queue.findtext('name')} is {state} ({meaning})")
        else:
            usable = True
    stuck = f"; no queue can take it: {'; '.join(unusable)}" if unusable and not usable else ""
    for job in root.iter("job_list"):
        number = job.findtext("JB_job_number") or ""
        state = job.findtext("state") or ""
        tasks = parse_tasks(job.findtext("tasks") or "")
        if "E" in state or state in ("t",) or "w" in state or "h" in state:
            entry = QueueEntry(
                "queued",
                f"{state}: {_WAIT_STATES.get(state, 'waiting')}{stuck}",
                stuck="E" in state,  # an error state does not clear by itself
            )
        elif "s" in state.lower():
            entry = QueueEntry("running", f"{state}: suspended")
        else:
            entry = QueueEntry("running")
        for t in tasks:
            out[(number, t)] = entry
    return out


def parse_qacct(text: str) -> dict[int, tuple[int | None, str]]:
    """`qacct -j ID` -> task -> (exit code, what happened)."""
    out: dict[int, tuple[int | None, str]] = {}
    for block in text.split("=" * 62):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            if key:
                fields[key] = value.strip()
        if "exit_status" not in fields:
            continue
        task = int(fields["taskid"]) if fields.get("taskid", "undefined").isdigit() else 1
        failed = fields.get("failed", "0")
        code = int(fields["exit_status"].split()[0])  # "137   (Killed)"
        if failed.split(" ")[0] != "0":
            out[task] = (code or None, f"SGE: failed {failed}, exit status {code}")
        else:
            out[task] = (code, f"exit status {code}")
    return out


class SGESettings(BatchSettings):
    """A Cluster's `settings:` for SGE."""

    pe: str = Field(default="smp", description="parallel environment for `slots` (qsub -pe)")
    slots: int | None = Field(default=None, ge=1, description="slots per instance")


class SGEExecutor(BatchSchedulerExecutor):
    """Array jobs through qsub; one `qstat -f -xml` per polling cycle."""

    name = "sge"
    settings_model = SGESettings

    def index_variable(self) -> str:
        return "SGE_TASK_ID"

    def _scheduler_submit(self, script: Path, batch: Batch, count: int) -> str:
        s = self.settings
        assert isinstance(s, SGESettings)
        argv = [
            "qsub", "-terse", "-V", "-S", "/bin/bash", "-N", batch.name,
            "-t", f"1-{count}", "-wd", str(batch.folder),
            "-o", str(batch.folder / "sge.$TASK_ID.out"), "-j", "y",
        ]  # fmt: skip
        if self.cluster.queue:
            argv += ["-q", self.cluster.queue]
        if s.slots:
            argv += ["-pe", s.pe, str(s.slots)]
        if s.memory:
            argv += ["-l", f"h_vmem={s.memory}"]
        if s.walltime:
            argv += ["-l", f"h_rt={s.walltime}"]
        argv += [str(a) for a in s.native]
        argv.append(str(script))
        said = self.run(argv).stdout.strip()
        match = re.match(r"(\d+)", said)
        if match is None:
            raise SchedulerError(f"qsub printed no job id: {said!r}")
        return match.group(1)

    def _scheduler_queue(self) -> dict[tuple[str, int], QueueEntry]:
        return parse_qstat(self.run(["qstat", "-f", "-xml"]).stdout)

    def _scheduler_accounting(self, job_id: str) -> dict[int, tuple[int | None, str]] | None:
        done = self.run(["qacct", "-j", job_id], check=False)
        if done.returncode != 0:
            return None  # "job id N not found": not written yet
        return parse_qacct(done.stdout) or None

    def _scheduler_cancel(self, job_id: str, indices: Sequence[int] | None) -> None:
        if indices is None:
            self.run(["qdel", job_id])
            return
        for first, last in _runs(sorted(indices)):
            self.run(["qdel", job_id, "-t", f"{first}-{last}"], check=False)

    # -- `runner cluster` ---------------------------------------------------------------------

    def cluster_status(self) -> str:
        """Hosts with their CPUs and load (qhost), and each queue's slots (qstat -g c)."""
        return self.run(["qhost"]).stdout + "\n" + self.run(["qstat", "-g", "c"]).stdout

    def cluster_apply(self) -> list[str]:
        """Make every group of the cluster exist as it is written: a host group `@NAME`
        with its hosts and a queue `NAME.q` on it with `slots` per host (created from the
        first existing queue's settings). Returns what changed."""
        changes: list[str] = []
        known = set(self.run(["qconf", "-sel"]).stdout.split())
        groups = set(self.run(["qconf", "-shgrpl"], check=False).stdout.split())
        queues = set(self.run(["qconf", "-sql"]).stdout.split())
        for name, (hosts, slots) in self.cluster.groups.items():
            strangers = [h for h in hosts if h not in known]
            if strangers:
                raise UserError(
                    f"cluster {self.cluster.name!r}, group {name!r}: {', '.join(strangers)} "
                    f"not an execution host of this cell (qconf -sel lists: "
                    f"{', '.join(sorted(known)) or 'none'}); start sge_execd there first"
                )
            hgrp, queue = f"@{name}", f"{name}.q"
            text = f"group_name {hgrp}\nhostlist {' '.join(hosts)}\n"
            if hgrp not in groups:
                self._qconf_file("-Ahgrp", text)
                changes.append(f"created host group {hgrp}: {' '.join(hosts)}")
            else:
                now = self.run(["qconf", "-shgrp", hgrp]).stdout
                listed = re.search(r"^hostlist\s+(.*)$", now, re.M)
                if listed is None or sorted(listed.group(1).split()) != sorted(hosts):
                    self._qconf_file("-Mhgrp", text)
                    changes.append(f"host group {hgrp} now: {' '.join(hosts)}")
            if queue not in queues:
                template = self.run(["qconf", "-sq", sorted(queues)[0]]).stdout
                conf = {
                    line.split(None, 1)[0]: line
                    for line in template.replace("\\\n", " ").splitlines()
                    if line.strip()
                }
                conf["qname"] = f"qname {queue}"
                conf["hostlist"] = f"hostlist {hgrp}"
                conf["slots"] = f"slots {slots}"
                self._qconf_file("-Aq", "\n".join(conf.values()) + "\n")
                changes.append(f"created queue {queue}: {slots} slot(s) on each host of {hgrp}")
            else:
                now = self.run(["qconf", "-sq", queue]).stdout
                have = re.search(r"^slots\s+(\S+)", now, re.M)
                if have is None or have.group(1) != str(slots):
                    self.run(["qconf", "-mattr", "queue", "slots", str(slots), queue])
                    changes.append(f"queue {queue}: {slots} slot(s) on each host")
                hl = re.search(r"^hostlist\s+(.*)$", now, re.M)
                if hl is None or hl.group(1).split() != [hgrp]:
                    self.run(["qconf", "-mattr", "queue", "hostlist", hgrp, queue])
                    changes.append(f"queue {queue} now on {hgrp}")
        return changes

    def _qconf_file(self, flag: str, text: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(text)
            f.flush()
            self.run(["qconf", flag, f.name])


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out
