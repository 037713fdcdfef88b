"""What the local executor's spawner process means for users: children start with default
signal handling, a dead spawner loses only what it was running, and a crashed runner's
leftovers are found by their environment even when they left the attempt's process group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from runner_local import LocalExecutor

from runner.contracts import Cluster, LaunchSpec, Status


def spec(tmp: Path, name: str, script: str, attempt: int = 1) -> LaunchSpec:
    return LaunchSpec(
        key=f"spawner-test/{name}/0/{attempt}",
        argv=["sh", "-c", script],
        env={
            "RUNNER_JOB": "spawner-test",
            "RUNNER_TASK": name,
            "RUNNER_INSTANCE_ID": "0",
            "RUNNER_ATTEMPT": str(attempt),
        },
        workdir=tmp,
        stdout=tmp / f"{name}.out",
        stderr=tmp / f"{name}.err",
    )


async def until_done(ex: LocalExecutor, handle: str) -> Status:
    while True:
        await ex.wait(timeout=0.5)
        st = (await ex.poll(handles=[handle]))[handle]
        if st.state not in ("queued", "running"):
            return st


async def all_done(ex: LocalExecutor, handles: list[str]) -> list[Status]:
    """Like the engine: every handle polled each time, so no exit waits unseen."""
    done: dict[str, Status] = {}
    while len(done) < len(handles):
        await ex.wait(timeout=0.5)
        polled = await ex.poll(handles=[h for h in handles if h not in done])
        done.update({h: st for h, st in polled.items() if st.state not in ("queued", "running")})
    return [done[h] for h in handles]


def pgrep(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def new_executor() -> LocalExecutor:
    return LocalExecutor(cluster=Cluster("t", "local", 2, None, {}))


def run_one(s: LaunchSpec) -> Status:
    """Submit one attempt to a fresh executor and wait for its end."""

    async def main() -> Status:
        ex = new_executor()
        try:
            return await until_done(ex, await ex.submit(spec=s))
        finally:
            await ex.close()

    return asyncio.run(main())


def test_children_get_default_sigpipe(tmp_path: Path) -> None:
    """Python ignores SIGPIPE; a task must not inherit that, or `yes | head` spews errors."""

    async def main() -> Status:
        ex = new_executor()
        try:
            h = await ex.submit(spec=spec(tmp_path, "pipe", "yes | head -n 1"))
            return await until_done(ex, h)
        finally:
            await ex.close()

    st = asyncio.run(main())
    assert st == Status("exited", 0)
    err = tmp_path / "pipe.err"
    assert not err.exists() or "Broken pipe" not in err.read_text()
    assert (tmp_path / "pipe.out").read_text() == "y\n"


def test_a_dead_spawner_loses_its_attempts_and_a_new_one_takes_over(tmp_path: Path) -> None:
    marker = f"77{uuid.uuid4().int % 10**6}.5"

    async def main() -> tuple[Status, Status]:
        ex = new_executor()
        try:
            h1 = await ex.submit(spec=spec(tmp_path, "long", f"sleep {marker}"))
            deadline = time.monotonic() + 10
            while not pgrep(marker) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert pgrep(marker)
            assert ex._spawner is not None  # the spawner: killed the hard way
            os.kill(ex._spawner.pid, signal.SIGKILL)
            lost = await until_done(ex, h1)
            h2 = await ex.submit(spec=spec(tmp_path, "after", "echo still here"))
            return lost, await until_done(ex, h2)
        finally:
            await ex.close()

    lost, after = asyncio.run(main())
    assert lost.state == "lost" and "spawner" in (lost.message or "")
    assert after == Status("exited", 0)
    assert (tmp_path / "after.out").read_text() == "still here\n"
    time.sleep(0.2)
    assert not pgrep(marker)  # what the dead spawner ran was killed, not orphaned


def test_reclaim_finds_processes_that_left_the_group(tmp_path: Path) -> None:
    """After a runner dies, its attempt's processes are found by their environment: also a
    background one that started its own session, which killing the group would miss."""
    fg, bg = f"78{uuid.uuid4().int % 10**6}.5", f"79{uuid.uuid4().int % 10**6}.5"
    s = spec(tmp_path, "escape", f"setsid sleep {bg} & sleep {fg}")
    # started the way a runner that then died would have left it: not our child to wait for
    env = {**os.environ, **s.env, "RUNNER_LOCAL_TOKEN": "feedc0de"}
    proc = subprocess.Popen(s.argv, env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (pgrep(fg) and pgrep(bg)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pgrep(fg) and pgrep(bg)
        ex = new_executor()
        # another attempt's key finds nothing and kills nothing
        assert not ex.reclaim(handle="feedc0de.0:spawner-test/escape/0/2")
        # the same attempt key started by another runner (another token) is not touched
        assert not ex.reclaim(handle=f"0ther.0:{s.key}")
        assert pgrep(fg) and pgrep(bg)
        assert ex.reclaim(handle=f"feedc0de.0:{s.key}")
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while pgrep(bg) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pgrep(fg) and not pgrep(bg)
    finally:
        for p in pgrep(bg) + pgrep(fg):
            os.kill(p, signal.SIGKILL)


def test_a_command_line_too_big_for_one_packet(tmp_path: Path) -> None:
    """A 300 kB command line travels to the spawner another way, and arrives whole (in
    three arguments: Linux takes at most 128 kB in one)."""
    big = ["x" * 100_000] * 3
    s = spec(tmp_path, "big", 'printf %s "$@" | wc -c')
    s = LaunchSpec(s.key, [*s.argv, "sh", *big], s.env, s.workdir, s.stdout, s.stderr)

    assert run_one(s) == Status("exited", 0)
    assert (tmp_path / "big.out").read_text().strip() == "300000"


def test_a_queued_attempt_waits_for_a_slot_and_can_be_cancelled_unstarted(
    tmp_path: Path,
) -> None:
    marker = f"76{uuid.uuid4().int % 10**6}.5"

    async def main() -> tuple[Status, Status, Status, Status]:
        ex = LocalExecutor(cluster=Cluster("t", "local", 1, None, {}))
        try:
            first = await ex.submit(spec=spec(tmp_path, "first", f"sleep {marker}"))
            second = await ex.submit(spec=spec(tmp_path, "second", "touch second-ran"))
            while (await ex.poll(handles=[first]))[first].state != "running":
                await ex.wait(timeout=0.5)
            waiting = (await ex.poll(handles=[second]))[second]
            await ex.cancel(handles=[second])
            cancelled = await until_done(ex, second)
            await ex.cancel(handles=[first])
            return waiting, cancelled, await until_done(ex, first), Status("exited", 0)
        finally:
            await ex.close()

    waiting, cancelled, first, _ = asyncio.run(main())
    assert waiting.state == "queued"  # one slot, taken
    assert cancelled == Status("exited", 128 + signal.SIGTERM)
    assert not (tmp_path / "second-ran").exists()
    assert first == Status("exited", 128 + signal.SIGTERM)


def test_the_working_directory_and_pwd_agree(tmp_path: Path) -> None:
    """Some programs (Blender) resolve relative paths with $PWD: it must be the workdir."""
    (tmp_path / "here").mkdir()
    s = spec(tmp_path, "pwd", "")
    # not a shell: a shell mends a wrong $PWD by itself
    s = LaunchSpec(s.key, ["env"], s.env, tmp_path / "here", s.stdout, s.stderr)

    assert run_one(s) == Status("exited", 0)
    assert f"PWD={tmp_path / 'here'}\n" in (tmp_path / "pwd.out").read_text()


def test_an_attempt_inherits_no_other_attempts_pipes(tmp_path: Path) -> None:
    """A process holding another attempt's pipe would keep that attempt's logs open (and could
    write into them): each attempt gets stdin, stdout and stderr, nothing else."""

    async def main() -> list[Status]:
        ex = LocalExecutor(cluster=Cluster("t", "local", 1, None, {}))
        try:
            # one slot: `second` starts while `third` waits in the queue with its pipes
            handles = [
                await ex.submit(spec=spec(tmp_path, "first", "sleep 0.3")),
                await ex.submit(spec=spec(tmp_path, "second", "ls /proc/self/fd")),
                await ex.submit(spec=spec(tmp_path, "third", "true")),
            ]
            return await asyncio.wait_for(all_done(ex, handles), 30)
        finally:
            await ex.close()

    assert asyncio.run(main()) == [Status("exited", 0)] * 3
    # 0, 1, 2 and the descriptor `ls` opens for the listing itself
    assert (tmp_path / "second.out").read_text().split() == ["0", "1", "2", "3"]
