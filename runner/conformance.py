"""The executor conformance suite: what every executor plugin must do, as pytest tests.

An executor's own tests subclass `ExecutorConformance` and provide `make_executor()`; the
checks here run real commands through it (no fakes), the way the engine uses it: submit,
wait, poll in batches, cancel, and log files at the paths the engine chose. Imported only by
tests; it needs pytest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runner.contracts import Executor, LaunchSpec, Status

__all__ = ["ExecutorConformance"]


class ExecutorConformance:
    """Subclass in a plugin's tests and implement `make_executor`."""

    timeout = 30.0

    def make_executor(self) -> Executor:
        """A fresh executor to test."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    def _spec(self, tmp: Path, name: str, argv: list[str], **env: str) -> LaunchSpec:
        return LaunchSpec(
            key=f"conformance/{name}/0/1",
            argv=argv,
            env={
                "RUNNER_JOB": "conformance",
                "RUNNER_TASK": name,
                "RUNNER_INSTANCE_ID": "0",
                "RUNNER_ATTEMPT": "1",
                **env,
            },
            workdir=tmp,
            stdout=tmp / f"{name}.out",
            stderr=tmp / f"{name}.err",
        )

    def _run(self, body: Callable[[Executor], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            ex = self.make_executor()
            try:
                return await asyncio.wait_for(body(ex), self.timeout)
            finally:
                await ex.close()

        return asyncio.run(main())

    async def _until_done(self, ex: Executor, handles: list[str]) -> dict[str, Status]:
        done: dict[str, Status] = {}
        while len(done) < len(handles):
            await ex.wait(timeout=0.5)
            polled = await ex.poll(handles=[h for h in handles if h not in done])
            done.update({h: s for h, s in polled.items() if s.state in ("exited", "lost")})
        return done

    # -- the checks -------------------------------------------------------------------------

    def test_exit_codes_and_logs(self, tmp_path: Path) -> None:
        """Exit codes come back as given; stdout and stderr land in the engine's paths."""
        specs = [
            self._spec(tmp_path, "ok", ["sh", "-c", "echo out; echo err >&2"]),
            self._spec(tmp_path, "three", ["sh", "-c", "exit 3"]),
            self._spec(
                tmp_path, "env", ["sh", "-c", 'echo "$GREETING" in "$(pwd)"'], GREETING="hi"
            ),
        ]

        async def body(ex: Executor) -> dict[str, Status]:
            handles = [await ex.submit(spec=s) for s in specs]
            done = await self._until_done(ex, handles)
            return {s.key.split("/")[1]: done[h] for s, h in zip(specs, handles, strict=True)}

        result = self._run(body)
        assert result["ok"] == Status("exited", 0)
        assert result["three"].exit_code == 3
        assert (tmp_path / "ok.out").read_text() == "out\n"
        assert (tmp_path / "ok.err").read_text() == "err\n"
        assert (tmp_path / "env.out").read_text() == f"hi in {tmp_path}\n"

    def test_a_program_that_cannot_start_exits_127(self, tmp_path: Path) -> None:
        """A missing program is an attempt that failed with 127, not an exception."""
        spec = self._spec(tmp_path, "missing", ["no-such-program-for-conformance"])

        async def body(ex: Executor) -> Status:
            h = await ex.submit(spec=spec)
            return (await self._until_done(ex, [h]))[h]

        assert self._run(body).exit_code == 127

    def test_cancel_stops_the_attempt_and_its_children(self, tmp_path: Path) -> None:
        """Cancel ends the attempt and whatever it started, well before it would end."""
        spec = self._spec(tmp_path, "sleepy", ["sh", "-c", "sleep 60 & sleep 60"])

        async def body(ex: Executor) -> tuple[Status, float]:
            h = await ex.submit(spec=spec)
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            await ex.cancel(handles=[h])
            st = (await self._until_done(ex, [h]))[h]
            return st, time.monotonic() - t0

        status, took = self._run(body)
        assert status.state == "exited" and status.exit_code != 0
        assert took < 10

    def test_many_handles_in_one_poll(self, tmp_path: Path) -> None:
        """poll() answers for every handle it is given, running or not."""
        specs = [self._spec(tmp_path, f"n{i}", ["sh", "-c", f"sleep 0.{i}"]) for i in range(6)]

        async def body(ex: Executor) -> tuple[int, dict[str, Status]]:
            handles = [await ex.submit(spec=s) for s in specs]
            first = await ex.poll(handles=handles)
            return len(first), await self._until_done(ex, handles)

        answered, done = self._run(body)
        assert answered == 6
        assert all(s == Status("exited", 0) for s in done.values())
