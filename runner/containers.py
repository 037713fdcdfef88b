"""Container Apps: an instance's command run in an OCI image through podman (or docker).

The engine turns an instance's argv into `podman run ...` when its task has an `image`; the
executor then runs that like any command (on SGE or Slurm, in the job script on the exec
host). Inside, paths are the same as outside: the working folder and output folders are
mounted read-write, inputs read-only, at their own paths, so `$<input>` means the same thing
in and out. Only the instance's own environment goes in (`-e NAME`, the value taken from the
environment `podman run` runs in, so that it is on no command line; variables the runtime
reads itself, like TMPDIR, go in by value and stay the runner's outside).

The image is resolved to its ID when the plan is made (pulled first if it is not here and the
policy allows): the ID is part of every instance's fingerprint, so a new tag, or the same tag
pointing at new content, reruns the work and `runner plan` says "image". Instances run the ID
the plan saw, not whatever the tag points at by then.

Each container is named after its run and attempt and labelled with the state folder and
run (`Containers` does that for the engine): when an attempt ends other than with 0
(cancelled, timed out, its `podman run` killed by a scheduler) its container is removed
(`rm -f`); a runner killed with -9 has its containers removed by the next `runner apply` that
reclaims the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.errors import Diagnostic, UserError
from runner.model import Task

__all__ = [
    "Boxed",
    "Container",
    "Containers",
    "container_name",
    "leftovers",
    "local_image",
    "remove",
    "remove_all",
    "remove_now",
    "resolve",
    "run_argv",
    "runtime_path",
    "runtime_said",
    "state_label",
]

PULL_TIMEOUT = 600.0  # seconds a pull may take before it counts as failed


def runtime_path(task: Task) -> str:
    """The container runtime's program for `task`; a UserError when none is installed."""
    wanted = [task.runtime] if task.runtime else ["podman", "docker"]
    for name in wanted:
        found = shutil.which(name)
        if found:
            return found
    missing = f"{task.runtime} is not installed" if task.runtime else (
        "no container runtime is installed (podman or docker)")  # fmt: skip
    raise UserError(Diagnostic(
        f"task {task.name!r} runs in image {task.image!r}, but {missing}", task.file,
        hint="install one (Debian: apt-get install podman runc), or remove `image:`",
    ))  # fmt: skip


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# what `podman run` and `docker run` exit with when they, not the command, failed (125), or the
# command could not be run (126) or found (127) in the image
RUNTIME_FAILURES = frozenset({125, 126, 127})


def runtime_said(runtime: str, code: int, stderr: Path) -> str | None:
    """After `runtime run` exited with `code`: the last line of its stderr (where the runtime
    writes why it failed, e.g. "Error: netavark: No such file or directory"), when the code is
    one of the runtime's own failures."""
    if code not in RUNTIME_FAILURES:
        return None
    try:
        with stderr.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    line = _last_line(tail)
    return None if line == "no message" else f"{Path(runtime).name} said: {line[:300]}"


def _inspect(runtime: str, image: str) -> tuple[str | None, str]:
    """(the image's ID or None, what the runtime said)."""
    try:
        p = subprocess.run(
            [runtime, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    found = p.stdout.strip().splitlines()
    if p.returncode == 0 and found:
        return found[0], ""
    return None, _last_line(p.stderr)


def local_image(image: str, runtime: str | None = None) -> str | None:
    """The ID of `image` if it is on this machine (never pulled); None if not, or when no
    container runtime is installed."""
    found = shutil.which(runtime) if runtime else shutil.which("podman") or shutil.which("docker")
    return _inspect(found, image)[0] if found else None


def resolve(task: Task, seen: dict[tuple[str, str, str], str] | None = None) -> str:
    """The ID of `task`'s image, pulled first if its policy says so; a UserError (before
    anything runs) when it is not here and cannot be pulled. `seen`: what one plan resolved
    already (a tag may move between plans, never within one)."""
    assert task.image is not None
    runtime = runtime_path(task)
    key = (runtime, task.image, task.image_pull_policy)
    seen = {} if seen is None else seen
    if key in seen:
        return seen[key]
    where = f"task {task.name!r}"
    image_id, said = (None, "") if task.image_pull_policy == "Always" else _inspect(
        runtime, task.image
    )  # fmt: skip
    if image_id is None and task.image_pull_policy == "Never":
        raise UserError(Diagnostic(
            f"{where}: image {task.image!r} is not here ({Path(runtime).name}: {said})",
            task.file, hint="imagePullPolicy is Never: build or load the image first",
        ))  # fmt: skip
    if image_id is None:
        try:
            p = subprocess.run(
                [runtime, "pull", "--quiet", task.image], capture_output=True, text=True,
                timeout=PULL_TIMEOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            pulled = p.returncode == 0
            said = _last_line(p.stderr) if not pulled else ""
        except subprocess.TimeoutExpired:
            pulled, said = False, f"no answer in {PULL_TIMEOUT:.0f} s"
        except OSError as e:
            pulled, said = False, str(e)
        if pulled:
            image_id, said = _inspect(runtime, task.image)
        if image_id is None:
            raise UserError(Diagnostic(
                f"{where}: image {task.image!r} is not here and cannot be pulled "
                f"({Path(runtime).name}: {said})", task.file,
                hint=f"check the image's name and tag (`{Path(runtime).name} images`), or "
                "build or load it on this machine",
            ))  # fmt: skip
    seen[key] = image_id
    return image_id


def state_label(state_dir: Path) -> str:
    """What marks the containers of one state folder (its path, hashed)."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]


def container_name(label: str, run_id: int, key: str) -> str:
    """The container of attempt `key` (JOB/TASK/INDEX/ATTEMPT) of run `run_id` of the state
    folder `label` marks: a name no other attempt, of this run or any other, ever has."""
    text = f"{label}\0{run_id}\0{key}"
    return f"runner-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


# variables the runtime itself reads: the instance's values for them go in with `-e K=V`,
# never into the environment `podman run` runs in (a task's TMPDIR would move podman's own)
RUNTIME_ENV = ("TMPDIR", "HOME", "PATH", "REGISTRY_AUTH_FILE", "CONTAINER_HOST",
               "CONTAINER_CONNECTION")  # fmt: skip
RUNTIME_ENV_PREFIXES = ("XDG_", "CONTAINERS_", "DOCKER_", "STORAGE_", "BUILDAH_", "PODMAN_")


def runtime_reads(name: str) -> bool:
    """Whether the container runtime reads environment variable `name` for itself."""
    return name in RUNTIME_ENV or name.startswith(RUNTIME_ENV_PREFIXES)


def _csv(field: str) -> str:
    """One field of a `--mount` value, quoted when it holds a comma, a quote or a colon."""
    return '"' + field.replace('"', '""') + '"' if any(c in field for c in ',":') else field


def run_argv(
    task: Task,
    argv: Sequence[str],
    *,
    runtime: str,
    name: str,
    labels: dict[str, str],
    env: dict[str, str],
    workdir: Path,
    read_only: Iterable[str],
    read_write: Iterable[str],
) -> list[str]:
    """`runtime run ...` that runs `argv` in the task's resolved image."""
    assert task.image_id is not None
    out = [runtime, "run", "--rm", "--name", name, "--stop-timeout", "0"]
    for k, v in sorted(labels.items()):
        out += ["--label", f"{k}={v}"]
    mounted: set[str] = set()
    for path, mode in [(str(workdir), "rw")] + [(p, "rw") for p in read_write] + [
        (p, "ro") for p in read_only
    ]:  # fmt: skip
        if path and path not in mounted and os.path.exists(path):
            mounted.add(path)
            # --mount, not -v: `-v a:b:ro` cannot say a path with a ':' in it
            spec = ["type=bind", _csv(f"source={path}"), _csv(f"target={path}")]
            out += ["--mount", ",".join(spec + (["readonly"] if mode == "ro" else []))]
    for k, v in sorted(env.items()):
        # by name, the value taken from the environment `podman run` runs in (so it is on
        # no command line); what the runtime reads itself goes in by value
        out += ["-e", f"{k}={v}" if runtime_reads(k) else k]
    # the command is the whole command: an image's own ENTRYPOINT would run it as arguments
    out += ["-w", str(workdir), "--entrypoint", argv[0], *task.run_args, task.image_id,
            *argv[1:]]  # fmt: skip
    return out


async def remove(runtime: str, names: Sequence[str]) -> None:
    """Remove these containers at once (killing what runs in them); gone ones are fine."""
    if not names:
        return
    try:
        podman = Path(runtime).name == "podman"  # docker's rm has no --time or --ignore
        flags = ["--force", "--time", "0", "--ignore"] if podman else ["--force"]
        p = await asyncio.create_subprocess_exec(
            runtime, "rm", *flags, *names,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(p.wait(), 120)
    except (TimeoutError, OSError):
        pass


def leftovers(runtime: str, labels: dict[str, str]) -> list[tuple[str, str]]:
    """(name, attempt key) of the containers carrying all these labels."""
    podman = Path(runtime).name == "podman"  # their templates differ: a map, a method
    key = '{{index .Labels "runner.key"}}' if podman else '{{.Label "runner.key"}}'
    cmd = [runtime, "ps", "--all", "--format", "{{.Names}} " + key]
    for k, v in labels.items():
        cmd += ["--filter", f"label={k}={v}"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in p.stdout.splitlines():
        name, _, key = line.strip().partition(" ")
        if name:
            found.append((name, key))
    return found


def remove_now(runtime: str, names: Sequence[str]) -> None:
    """`remove`, from code that is not in an event loop."""
    if names:
        asyncio.run(remove(runtime, names))


@dataclass(frozen=True, slots=True)
class Container:
    """An attempt's container: its name, and the runtime that runs it."""

    name: str
    runtime: str


@dataclass(frozen=True, slots=True)
class Boxed:
    """An attempt's command as run in its task's image: the runtime's argv, the environment
    to run that in, and the container it makes."""

    argv: list[str]
    env: dict[str, str]
    container: Container


class Containers:
    """The containers of the attempts one engine runs, for the state folder `state_dir`:
    each named after its run and attempt, and labelled so that a later runner finds it."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._label: str | None = None  # the state folder's mark, worked out once if needed

    def box(
        self,
        task: Task,
        *,
        run_id: int,
        key: str,
        argv: list[str],
        env: dict[str, str],
        workdir: Path,
    ) -> Boxed:
        """`argv` of attempt `key` run in the plan's `task`'s image, and the environment to
        run that in: the working folder and outputs mounted read-write, inputs read-only, the
        instance's environment passed in (what the runtime reads itself stays the runner's,
        outside)."""
        runtime = runtime_path(task)
        label = self._label
        if label is None:
            label = self._label = state_label(self._state_dir)
        name = container_name(label, run_id, key)
        with contextlib.suppress(OSError):  # a folder that cannot be made fails the attempt
            workdir.mkdir(parents=True, exist_ok=True)  # below; one that can is mounted
        labels = {
            "runner.state": label,
            "runner.run": str(run_id),
            "runner.key": key,
        }
        boxed = run_argv(
            task, argv, runtime=runtime, name=name, labels=labels, env=env,
            workdir=workdir, read_only=task.inputs.values(),
            read_write=[p for p in task.outputs.values() if "://" not in p],
        )  # fmt: skip
        outside = {k: v for k, v in env.items() if not runtime_reads(k)}
        return Boxed(boxed, outside, Container(name, runtime))


async def remove_all(containers: Iterable[Container]) -> None:
    """Remove these containers, one `rm` per runtime (killing what runs in them)."""
    by_runtime: dict[str, list[str]] = {}
    for c in containers:
        by_runtime.setdefault(c.runtime, []).append(c.name)
    for runtime, names in by_runtime.items():
        await remove(runtime, names)
