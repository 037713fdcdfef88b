"""The sge and slurm executors on the real single-node schedulers that scripts/schedulers
starts (the test command runs it): whole jobs through `runner apply`, polling cost, jobs
killed or stuck outside the runner, re-attach after the runner dies, cancel."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from runner_sge import SGEExecutor
from runner_slurm import SlurmExecutor

from runner.contracts import BatchSchedulerExecutor, Cluster, LaunchSpec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "manifests" / "examples" / "cluster"
EXECUTORS = {"sge": SGEExecutor, "slurm": SlurmExecutor}
HOLD = {"sge": ["-h"], "slurm": ["--hold"]}  # submitted held: it waits forever
QUEUE = {"sge": ["qstat"], "slurm": ["squeue", "-h"]}

pytestmark = pytest.mark.parametrize("executor", ["sge", "slurm"])


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True
    )


def cluster_file(tmp: Path, executor: str, **settings: object) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    (tmp / f"{executor}.yaml").write_text(
        "apiVersion: runner/v1\nkind: Cluster\nmetadata: {name: farm}\n"
        f"spec:\n  executor: {executor}\n  settings:\n    poll_max: 2\n{lines}"
    )
    return f"{executor}.yaml"


def apply_in_background(tmp: Path, cluster: str) -> subprocess.Popen[str]:
    """`runner apply m.yaml CLUSTER` in `tmp`, left running."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", "m.yaml", cluster],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(p: subprocess.Popen[str], ready: Callable[[], object], limit: float = 60) -> None:
    """Until `ready()` is true, while the runner `p` keeps running."""
    deadline = time.monotonic() + limit
    while not ready():
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.2)


def in_queue(executor: str, name: str) -> bool:
    return name in subprocess.run(QUEUE[executor], capture_output=True, text=True).stdout


def test_the_example_job_runs_on_the_cluster_and_is_not_redone(
    tmp_path: Path, executor: str
) -> None:
    for f in EXAMPLE.glob("*.yaml"):
        shutil.copy(f, tmp_path)
    r = runner("apply", ".", "--cluster", executor, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out" / "report" / "total.txt").read_text() == "17984 primes\n"
    assert "9 succeeded" in r.stdout
    # the same work on another cluster (the one the job names) is the same work: nothing to do
    again = runner("apply", ".", cwd=tmp_path)
    assert "Nothing to do" in again.stdout, again.stdout + again.stderr
    # one array job per task; each instance's output at the engine's path
    scripts = sorted((tmp_path / ".runner" / "logs" / "1" / "count").glob(f".{executor}-*/job.sh"))
    assert len(scripts) == 1
    assert (tmp_path / ".runner" / "logs" / "1" / "count" / "7.1.out").exists()


def test_polling_costs_one_queue_query_whatever_the_number_of_jobs(
    tmp_path: Path, executor: str
) -> None:
    """200 instances in flight in 20 array jobs: each poll asks the scheduler at most once."""
    cls = EXECUTORS[executor]

    async def main() -> list[int]:
        ex: BatchSchedulerExecutor = cls(
            cluster=Cluster(
                "t",
                executor,
                2,
                None,
                {"poll_min": 0, "native": HOLD[executor], "array_max": 10},
            )
        )
        handles = []
        for task in range(10):
            for i in range(20):
                spec = LaunchSpec(
                    key=f"budget/t{task}/{i}/1", argv=["true"], env={}, workdir=tmp_path,
                    stdout=tmp_path / f"{task}.{i}.out", stderr=tmp_path / f"{task}.{i}.err",
                )  # fmt: skip
                handles.append(await ex.submit(spec=spec))
        submit = "qsub" if executor == "sge" else "sbatch"
        try:
            while ex.calls[submit] < 20:  # the array jobs go out while the engine waits
                await ex.wait(timeout=0.1)
            per_poll = []
            for _ in range(6):
                await ex.wait(timeout=0.3)
                before = sum(ex.calls.values())
                statuses = await ex.poll(handles=handles)
                per_poll.append(sum(ex.calls.values()) - before)
                assert len(statuses) == 200
            assert ex.calls[submit] == 20  # each task's 20 attempts in arrays of 10
            return per_poll
        finally:
            await ex.cancel(handles=handles)
            await ex.close()

    per_poll = asyncio.run(main())
    assert max(per_poll) == 1, per_poll  # one queue query, for 200 instances in 20 jobs


def test_scheduler_calls_never_exceed_the_ceiling_per_minute(tmp_path: Path, executor: str) -> None:
    """However often the engine polls, at most `max_calls_per_minute` scheduler commands."""
    cls = EXECUTORS[executor]

    async def main() -> int:
        settings = {"poll_min": 0, "max_calls_per_minute": 4, "native": HOLD[executor]}
        ex: BatchSchedulerExecutor = cls(cluster=Cluster("t", executor, 2, None, settings))
        spec = LaunchSpec(
            key="ceiling/t/0/1", argv=["true"], env={}, workdir=tmp_path,
            stdout=tmp_path / "0.out", stderr=tmp_path / "0.err",
        )  # fmt: skip
        h = await ex.submit(spec=spec)
        try:
            for _ in range(40):
                await ex.wait(timeout=0.05)
                st = await ex.poll(handles=[h])
                assert st[h].state == "queued"  # held: it waits, and says so
            return sum(ex.calls.values())
        finally:
            ex.max_calls = 100  # the clean-up may ask
            await ex.cancel(handles=[h])
            await ex.close()

    assert asyncio.run(main()) == 4  # the submission and three queue queries, no more


def test_a_job_killed_outside_the_runner_is_retried_with_the_reason(
    tmp_path: Path, executor: str
) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: k}\nspec:\n  cluster: farm\n"
        "  tasks:\n    victim:\n      retries: 1\n"
        "      command: if [ $RUNNER_ATTEMPT = 1 ]; then sleep 60; fi; echo fine\n"
    )
    cf = cluster_file(tmp_path, executor)
    p = apply_in_background(tmp_path, cf)
    folder = tmp_path / ".runner" / "logs" / "1" / "victim"
    wait_until(p, lambda: list(folder.glob(f".{executor}-*/1.start")))
    job_id = next(folder.glob(f".{executor}-*/job-id")).read_text().strip()
    subprocess.run(["qdel" if executor == "sge" else "scancel", job_id], check=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, out + err
    status = runner("status", "1", cwd=tmp_path).stdout
    # Slurm signals the job script (it says so); SGE kills it outright (accounting says so)
    said = {
        "slurm": "attempt 1 failed: exit code 143; the slurm scheduler sent SIGTERM to the job",
        "sge": "attempt 1 failed: exit code 137; ended outside the runner (SGE: failed 100",
    }[executor]
    assert said in status, status
    assert (folder / "0.2.out").read_text() == "fine\n"


def test_a_job_stuck_in_the_queue_is_given_up_with_the_reason(
    tmp_path: Path, executor: str
) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: s}\nspec:\n  cluster: farm\n"
        "  tasks:\n    waits:\n      command: echo never\n"
    )
    cf = cluster_file(tmp_path, executor, stuck_after=6, native=HOLD[executor])
    p = apply_in_background(tmp_path, cf)
    # while it waits, `runner status` says why (the scheduler's own words)
    held = {"sge": "hqw: on hold", "slurm": "JobHeldUser"}[executor]
    deadline = time.monotonic() + 30
    while held not in (shown := runner("status", cwd=tmp_path).stdout):
        assert time.monotonic() < deadline and p.poll() is None, shown
        time.sleep(0.3)
    assert "attempt 1 queued" in shown, shown
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, out + err
    assert "stuck in the queue" in out, out
    job_id = next((tmp_path / ".runner").rglob("job-id")).read_text().strip()
    deadline = time.monotonic() + 20
    while in_queue(executor, f" {job_id}") or in_queue(executor, f"{job_id}_"):
        assert time.monotonic() < deadline, "the stuck job was left in the queue"
        time.sleep(0.5)


def test_after_kill_9_apply_reattaches_and_submits_nothing_twice(
    tmp_path: Path, executor: str
) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: r}\nspec:\n  cluster: farm\n"
        "  tasks:\n    slow:\n      instances: 4\n"
        f"      command: echo ran >> {tmp_path}/runs-$<instance_id>; sleep 4\n"
    )
    cf = cluster_file(tmp_path, executor)
    p = apply_in_background(tmp_path, cf)
    wait_until(p, (tmp_path / "runs-0").exists)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    r = runner("apply", "m.yaml", cf, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not submitted again" in r.stdout and "re-attached" in r.stdout
    for i in range(4):
        assert (tmp_path / f"runs-{i}").read_text() == "ran\n", i  # each ran exactly once
    assert len(list((tmp_path / ".runner").rglob("job.sh"))) == 1  # one submission in all


@pytest.mark.parametrize("how", ["runner cancel", "Ctrl-C"])
def test_cancel_removes_every_job_of_the_run(tmp_path: Path, executor: str, how: str) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: c}\nspec:\n  cluster: farm\n"
        "  tasks:\n    long:\n      instances: 5\n      command: sleep 120\n"
    )
    cf = cluster_file(tmp_path, executor)
    p = apply_in_background(tmp_path, cf)
    wait_until(p, lambda: list((tmp_path / ".runner").rglob("job-id")))
    job_id = next((tmp_path / ".runner").rglob("job-id")).read_text().strip()
    if how == "Ctrl-C":
        p.send_signal(signal.SIGINT)
    else:
        c = runner("cancel", "1", cwd=tmp_path)
        assert c.returncode == 0, c.stdout + c.stderr
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "cancelled" in out, out + err
    deadline = time.monotonic() + 20
    while in_queue(executor, f" {job_id} ") or in_queue(executor, f"{job_id}_"):
        assert time.monotonic() < deadline, "a job of the cancelled run is still queued"
        time.sleep(0.5)


def test_the_scheduler_is_never_handed_the_runners_secrets(tmp_path: Path, executor: str) -> None:
    """`qsub -V` and `sbatch --export=ALL` give the scheduler the submitter's environment,
    and it keeps it (SGE shows it to `qstat -j`; Slurm stores it with the job): not the
    runner's storage secret, which stays with the runner."""
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: s}\nspec:\n  cluster: farm\n"
        "  tasks:\n    hold: {command: sleep 30}\n"
    )
    cf = cluster_file(tmp_path, executor)
    secret = f"runner-secret-{uuid.uuid4().hex}"
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", "m.yaml", cf], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OSS_ACCESS_KEY_SECRET": secret, "VISIBLE_MARK": secret[::-1]},
    )  # fmt: skip
    try:
        folder = tmp_path / ".runner" / "logs" / "1" / "hold"
        wait_until(p, lambda: list(folder.glob(f".{executor}-*/1.start")))
        job_id = next(folder.glob(f".{executor}-*/job-id")).read_text().strip()
        if executor == "sge":
            kept = subprocess.run(["qstat", "-j", job_id], capture_output=True, text=True).stdout
        else:
            files = Path("/var/lib/slurm/slurmctld").glob(f"hash.*/job.{job_id}/environment")
            kept = "".join(f.read_bytes().decode(errors="replace") for f in files)
        assert secret[::-1] in kept  # the rest of the environment is there to be seen
        assert secret not in kept
    finally:
        subprocess.run([sys.executable, "-m", "runner", "cancel", "1"], cwd=tmp_path,
                       capture_output=True)  # fmt: skip
        p.communicate(timeout=120)
