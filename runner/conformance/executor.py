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

from runner.contracts import SECRET_ENV, Executor, LaunchSpec, Status

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
        assert (result["ok"].state, result["ok"].exit_code) == ("exited", 0)
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
        spec = self._spec(
            tmp_path, "sleepy", ["sh", "-c", f"sleep 60 & echo $! > {tmp_path}/child; sleep 60"]
        )

        async def body(ex: Executor) -> tuple[Status, float]:
            h = await ex.submit(spec=spec)
            while not (tmp_path / "child").exists():  # it runs (a scheduler may queue it first)
                await ex.wait(timeout=0.2)
                await ex.poll(handles=[h])
            t0 = time.monotonic()
            await ex.cancel(handles=[h])
            st = (await self._until_done(ex, [h]))[h]
            return st, time.monotonic() - t0

        status, took = self._run(body)
        assert status.state == "exited" and status.exit_code != 0
        assert took < 10
        child = Path(f"/proc/{(tmp_path / 'child').read_text().strip()}")
        deadline = time.monotonic() + 10
        while child.exists() and "Z" not in _proc_state(child):
            assert time.monotonic() < deadline, "the attempt's child outlived the cancel"
            time.sleep(0.1)

    def test_arguments_and_environment_arrive_unchanged(self, tmp_path: Path) -> None:
        """No shell between the engine and the program re-reads arguments or values."""
        tricky = ["a b", "it's", '"q"', "$HOME", "*", "`x`", "", "back\\slash", "new\nline"]
        spec = self._spec(
            tmp_path, "tricky", ["printf", "[%s]", *tricky], TRICKY="$x 'y' \"z\" `w` ;|&"
        )
        env_spec = self._spec(tmp_path, "tricky-env", ["sh", "-c", 'printf %s "$TRICKY"'],
                              TRICKY="$x 'y' \"z\" `w` ;|&")  # fmt: skip

        async def body(ex: Executor) -> dict[str, Status]:
            handles = [await ex.submit(spec=s) for s in (spec, env_spec)]
            return await self._until_done(ex, handles)

        assert all((s.state, s.exit_code) == ("exited", 0) for s in self._run(body).values())
        assert (tmp_path / "tricky.out").read_text() == "".join(f"[{t}]" for t in tricky)
        assert (tmp_path / "tricky-env.out").read_text() == "$x 'y' \"z\" `w` ;|&"

    def test_the_runners_storage_secrets_do_not_reach_instances(
        self, tmp_path: Path, monkeypatch: Any
    ) -> None:
        """An instance's command could print its environment into its log: the runner's OSS
        secret and session token are not in it (what its task's env sets is)."""
        for name in SECRET_ENV:
            monkeypatch.setenv(name, "runner-secret-value")
        monkeypatch.setenv("OSS_ACCESS_KEY_ID", "runner-key-id")
        spec = self._spec(tmp_path, "secrets", ["sh", "-c", "env"])
        given = self._spec(tmp_path, "given", ["sh", "-c", 'printf %s "$OSS_SESSION_TOKEN"'],
                           OSS_SESSION_TOKEN="the task's own")  # fmt: skip

        async def body(ex: Executor) -> dict[str, Status]:
            handles = [await ex.submit(spec=s) for s in (spec, given)]
            return await self._until_done(ex, handles)

        assert all((s.state, s.exit_code) == ("exited", 0) for s in self._run(body).values())
        seen = (tmp_path / "secrets.out").read_text()
        assert "OSS_ACCESS_KEY_ID=runner-key-id" in seen  # the rest of the environment is there
        assert "runner-secret-value" not in seen
        assert (tmp_path / "given.out").read_text() == "the task's own"

    def test_every_exit_code_and_signal_comes_back(self, tmp_path: Path) -> None:
        """Codes a scheduler treats specially (SGE: 99 requeues, 100 holds in error) are
        plain failures here; death by a signal is 128 + its number."""
        cases = {"c1": "exit 1", "c99": "exit 99", "c100": "exit 100", "c255": "exit 255",
                 "kill9": "kill -9 $$", "term": "kill -TERM $$"}  # fmt: skip
        specs = {n: self._spec(tmp_path, n, ["sh", "-c", c]) for n, c in cases.items()}

        async def body(ex: Executor) -> dict[str, int | None]:
            handles = {n: await ex.submit(spec=s) for n, s in specs.items()}
            done = await self._until_done(ex, list(handles.values()))
            return {n: done[h].exit_code for n, h in handles.items()}

        assert self._run(body) == {
            "c1": 1, "c99": 99, "c100": 100, "c255": 255, "kill9": 137, "term": 143
        }  # fmt: skip

    def test_many_handles_in_one_poll(self, tmp_path: Path) -> None:
        """poll() answers for every handle it is given, running or not."""
        specs = [self._spec(tmp_path, f"n{i}", ["sh", "-c", f"sleep 0.{i}"]) for i in range(6)]

        async def body(ex: Executor) -> tuple[int, dict[str, Status]]:
            handles = [await ex.submit(spec=s) for s in specs]
            first = await ex.poll(handles=handles)
            return len(first), await self._until_done(ex, handles)

        answered, done = self._run(body)
        assert answered == 6
        assert all((s.state, s.exit_code) == ("exited", 0) for s in done.values())


def _proc_state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"
