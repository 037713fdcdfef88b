"""The `shell` task kind: every instance runs the task's command with its values substituted."""

from __future__ import annotations

from pathlib import Path

from runner.contracts import InstanceSpec, KindBase, Task, command_argv, render

__all__ = ["ShellKind"]


class ShellKind(KindBase):
    """Runs `command` once per instance; success is exit code 0."""

    # a shell command is whatever the manifest says: every task or App writes `command:`
    default_command = None

    def expand(self, *, task: Task) -> list[InstanceSpec]:
        """Substitute values (and `$<instance_id>`) into the command and env per instance."""
        base = task.values()
        specs = []
        for i in range(task.instances):
            values = {**base, "instance_id": str(i)}
            env = {k: render(v, values, quote=False) for k, v in task.env.items()}
            specs.append(InstanceSpec(index=i, argv=command_argv(task.command, values), env=env))
        return specs

    def verify(
        self, *, task: Task, instance: InstanceSpec, stdout: Path, stderr: Path
    ) -> str | None:
        """Exit code 0 is all a shell command promises."""
        return None
