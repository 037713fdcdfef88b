"""The shared batch-scheduler machinery (runner/batch_scheduler.py) on paths the real schedulers of
tests/test_clusters.py cannot be made to take on demand, through a FAKE scheduler defined
here: its queue, accounting and submissions are whatever the test says."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from runner.contracts import Batch, BatchSchedulerExecutor, Cluster, LaunchSpec, QueueEntry


class FakeScheduler(BatchSchedulerExecutor):
    """A FAKE scheduler: nothing runs; the test sets the queue and the accounting."""

    name = "fake"

    def __init__(self, **settings: object) -> None:
        super().__init__(cluster=Cluster("fake", "fake", 1, None, dict(settings)))
        self.queue: dict[tuple[str, int], QueueEntry] = {}
        self.records: dict[int, tuple[int | None, str]] | None = None
        self.submitted: list[str] = []
        self.cancelled: list[tuple[str, Sequence[int] | None]] = []

    def index_variable(self) -> str:
        return "FAKE_TASK_ID"

    def _scheduler_submit(self, script: Path, batch: Batch, count: int) -> str:
        self.submitted.append(script.read_text())
        return "42"

    def _scheduler_queue(self) -> dict[tuple[str, int], QueueEntry]:
        return dict(self.queue)

    def _scheduler_accounting(self, job_id: str) -> dict[int, tuple[int | None, str]] | None:
        return self.records

    def _scheduler_cancel(self, job_id: str, indices: Sequence[int] | None) -> None:
        self.cancelled.append((job_id, indices))


def spec(tmp: Path, i: int = 0) -> LaunchSpec:
    return LaunchSpec(
        key=f"j/t/{i}/1", argv=["true"], env={}, workdir=tmp,
        stdout=tmp / f"{i}.out", stderr=tmp / f"{i}.err",
    )  # fmt: skip


def test_a_clean_end_in_accounting_is_not_taken_for_the_commands_success(tmp_path: Path) -> None:
    """The job script always exits 0: only its exit file says how the command did."""

    async def main() -> list[str]:
        ex = FakeScheduler(poll_min=0, lost_after=0.5)
        h = await ex.submit(spec=spec(tmp_path))
        await ex.wait(timeout=0.01)
        await ex.close()
        ex.records = {1: (0, "exit status 0")}  # gone from the queue, "ended well"
        seen = []
        for _ in range(8):
            await asyncio.sleep(0.1)
            seen.append((await ex.poll(handles=[h]))[h].state)
        return seen

    seen = asyncio.run(main())
    assert "exited" not in seen  # never a success without the exit file
    assert seen[-1] == "lost"


def test_the_exit_file_decides_when_it_appears_late(tmp_path: Path) -> None:
    async def main() -> tuple[str, int | None]:
        ex = FakeScheduler(poll_min=0, lost_after=30)
        h = await ex.submit(spec=spec(tmp_path))
        await ex.wait(timeout=0.01)
        await ex.close()
        ex.records = {1: (0, "exit status 0")}
        await ex.poll(handles=[h])
        folder = Path(h.rpartition("#")[0])
        (folder / "1.exit").write_text("3 \n")  # a shared file system shows it now
        st = (await ex.poll(handles=[h]))[h]
        return st.state, st.exit_code

    assert asyncio.run(main()) == ("exited", 3)


def test_attempts_cancelled_before_their_batch_went_out_are_never_submitted(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[list[str], str]:
        ex = FakeScheduler()
        handles = [await ex.submit(spec=spec(tmp_path, i)) for i in range(3)]
        await ex.cancel(handles=handles)  # before the engine's next wait: nothing sent yet
        await ex.wait(timeout=0.01)
        await ex.close()
        st = (await ex.poll(handles=handles[:1]))[handles[0]]
        return ex.submitted, st.message or ""

    submitted, message = asyncio.run(main())
    assert submitted == []
    assert "cancelled before it was submitted" in message


def test_a_job_in_error_state_is_given_up_at_once(tmp_path: Path) -> None:
    async def main() -> tuple[str, str | None]:
        ex = FakeScheduler(poll_min=0)
        h = await ex.submit(spec=spec(tmp_path))
        await ex.wait(timeout=0.01)
        await ex.close()
        ex.queue = {("42", 1): QueueEntry("queued", "Eqw: in error state", stuck=True)}
        st = (await ex.poll(handles=[h]))[h]
        return st.state, st.message

    assert asyncio.run(main()) == ("lost", "Eqw: in error state")


def test_a_job_the_scheduler_signalled_is_never_a_success(tmp_path: Path) -> None:
    """The command may exit 0 after the scheduler's SIGTERM (a shell outliving its killed
    child): the attempt still failed, with the signal's code and the reason."""

    async def main() -> tuple[str, int | None, str]:
        ex = FakeScheduler(poll_min=0)
        h = await ex.submit(spec=spec(tmp_path))
        await ex.wait(timeout=0.01)
        await ex.close()
        (Path(h.rpartition("#")[0]) / "1.exit").write_text("0 TERM\n")
        st = (await ex.poll(handles=[h]))[h]
        return st.state, st.exit_code, st.message or ""

    state, code, message = asyncio.run(main())
    assert (state, code) == ("exited", 143)
    assert "sent SIGTERM to the job" in message
