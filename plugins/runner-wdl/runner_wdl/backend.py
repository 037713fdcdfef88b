"""A miniwdl container backend without containers: each task's command runs as a process
group on the host, where the runner's instance runs (this machine, or an SGE or Slurm node).

The "container" is the call's own run folder: the command runs in `<call>/work`, and inputs
appear below `<call>/work/_miniwdl_inputs/` as symbolic links (copies with miniwdl's
`copy_input_files`), exactly where a container would see them, so files that a workflow
expects side by side (a reference and its indexes) are side by side. miniwdl's scheduler
still reserves CPUs and memory; `runtime.docker` is ignored. On cancel the group gets
SIGTERM, then SIGKILL after 10 s; whatever is left when the call ends is killed, as a
container's teardown would.

Selected with `[scheduler] container_backend = runner_host` (the `wdl` kind does it).
`LocalFirstPodman` (`runner_podman`) is miniwdl's podman backend with one change, for
`backend: podman`: an image already on this machine is not pulled.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from typing import Any

from WDL._util import StructuredLogMessage as _
from WDL.runtime.backend.cli_subprocess import SubprocessBase, _SubprocessScheduler
from WDL.runtime.backend.podman import PodmanContainer
from WDL.runtime.error import Terminated

__all__ = ["HostBackend"]

GRACE = 10.0  # seconds between SIGTERM and SIGKILL on cancel


class HostBackend(SubprocessBase):
    cli_name = "runner_host"

    @classmethod
    def global_init(cls, cfg: Any, logger: logging.Logger) -> None:
        logger.info("runner_host backend: task commands run on this host, without containers")

    def __init__(self, cfg: Any, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        self.container_dir = host_dir  # what the command sees is what is on the host

    def host_work_dir(self) -> str:
        return os.path.join(self.host_dir, "work")  # the same on every try

    def reset(self, logger: logging.Logger) -> None:
        work = self.host_work_dir()
        if os.path.exists(work):  # a retry starts clean; the failed try's files are kept
            os.rename(work, f"{work}.failed{self.try_counter}")
        super().reset(logger)

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> list[str]:
        raise NotImplementedError  # _run below starts the process itself

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        with ExitStack() as cleanup:
            cpu = self.runtime_values.get("cpu", 0)
            mem = self.runtime_values.get("memory_reservation", 0)
            cleanup.enter_context(_SubprocessScheduler(cpu, mem))
            logger.info(_("provisioned", cpu=cpu, mem_bytes=mem))
            if self._bind_input_files:
                for host_path, container_path in self.input_path_map.items():
                    link = self.host_work_path(container_path).rstrip("/")
                    os.makedirs(os.path.dirname(link), exist_ok=True)
                    os.symlink(host_path.rstrip("/"), link)
            script = os.path.join(self.host_dir, "command")
            with open(script, "w") as f:
                for name, value in self.runtime_values.get("env", {}).items():
                    f.write(f"export {name}={shlex.quote(str(value))}\n")
                f.write(command)
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            stdout = cleanup.enter_context(open(self.host_stdout_txt(), "ab"))
            stderr = cleanup.enter_context(open(self.host_stderr_txt(), "ab"))
            shell = shlex.split(self.cfg.get("task_runtime", "command_shell"))
            proc = subprocess.Popen(
                [*shell, script], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                cwd=self.host_work_dir(), start_new_session=True,
            )  # fmt: skip
            cleanup.callback(_kill_group, proc.pid, signal.SIGKILL)
            logger.notice(_("started on the host", pid=proc.pid))  # type: ignore[attr-defined]
            cleanup.enter_context(self.task_running_context())
            code: int | None = None
            kill_at: float | None = None
            while code is None:
                if terminating() and kill_at is None:
                    _kill_group(proc.pid, signal.SIGTERM)
                    kill_at = time.monotonic() + GRACE
                elif kill_at is not None and time.monotonic() > kill_at:
                    _kill_group(proc.pid, signal.SIGKILL)
                with suppress(subprocess.TimeoutExpired):
                    code = proc.wait(1)
                poll_stderr()
            if terminating():
                raise Terminated()
        return code


def _kill_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class LocalFirstPodman(PodmanContainer):  # type: ignore[misc]
    """miniwdl's podman backend, except that an image already on this machine is used as it
    is: miniwdl pulls every image first, which fails for one built or loaded here (no registry
    has it). Selected by `backend: podman` in a `wdl` task (entry point `runner_podman`)."""

    def _pull_invocation(self, logger: logging.Logger, cleanup: ExitStack) -> tuple[str, list[str]]:
        image, invocation = super()._pull_invocation(logger, cleanup)
        exists = [*invocation[: invocation.index("pull")], "image", "exists"]
        # `sh -c 'EXISTS "$0" || exec "$@"' IMAGE PULL...`: the pull only if it is not here
        script = f'{shlex.join(exists)} "$0" || exec "$@"'
        return image, ["sh", "-c", script, image, *invocation]
