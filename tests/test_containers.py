"""Container Apps with real podman: the command runs in its image with inputs read-only and
outputs kept, the image's ID decides reruns, stopped attempts leave no container (cancel,
timeout, a runner killed with -9), and a missing image or runtime is an error before anything
runs. Images are built here by the example's build-image.sh (busybox-static, podman import)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.containers import state_label
from tests.conftest import cli, run, write


@pytest.fixture
def own_tag(images: str) -> Iterator[str]:
    """A tag of this test's own (pointing at :1 to begin with), removed afterwards."""
    tag = f"localhost/runner-test/moved-{uuid.uuid4().hex[:8]}:a"
    subprocess.run(["podman", "tag", f"{images}:1", tag], check=True)
    yield tag
    subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)


def containers_of(state: Path) -> list[str]:
    """Containers (running or not) of the state folder `state`."""
    p = subprocess.run(
        ["podman", "ps", "--all", "--format", "{{.Names}}",
         "--filter", f"label=runner.state={state_label(state)}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return p.stdout.split()


def until(ready: Callable[[], object], p: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not ready():
        assert time.monotonic() < deadline and p.poll() is None, "gave up waiting"
        time.sleep(0.2)


APP = """
apiVersion: runner/v1
kind: App
metadata: {{name: words}}
spec:
  image: {image}
  imagePullPolicy: {policy}
  command: {command}
  params:
    secs: {{type: int, default: 0}}
  inputs: {{text: {{}}}}
  outputs: {{out: {{}}}}
---
apiVersion: runner/v1
kind: Job
metadata: {{name: boxed}}
spec:
  tasks:
    t:
      app: words
      instances: {instances}
      env: {{COLOR: blue}}
      inputs: {{text: data}}
      outputs: {{out: out}}
      {extra}
"""
COUNT = (
    "'wordfreq 2 $<text>/a.txt > $<out>/top-$<instance_id>.txt;"
    ' echo "id=$RUNNER_INSTANCE_ID of $BATCH_COMPUTE_DAG_INSTANCE_COUNT color=$COLOR'
    ' host=${HOST_ONLY:-none} secret=${OSS_ACCESS_KEY_SECRET:-none} tmp=${TMPDIR:-none}";'
    " touch $<text>/new 2>&1; echo to-stderr >&2; sleep $<secs>'"
)


def job(tmp: Path, image: str, *, command: str = COUNT, instances: int = 2,
        policy: str = "Never", extra: str = "") -> Path:  # fmt: skip
    write(tmp / "data" / "a.txt", "sea sea sea ship ship gull\n")
    return write(tmp / "m.yaml", APP.format(image=image, command=command, instances=instances,
                                            policy=policy, extra=extra))  # fmt: skip


def test_the_tool_in_the_image_runs_with_inputs_read_only_and_outputs_kept(
    tmp_path: Path, images: str
) -> None:
    assert shutil.which("wordfreq") is None  # it lives in the image only
    job(tmp_path, f"{images}:1")
    # a folder name no `-v a:b:ro` could mount, and a TMPDIR for inside that podman itself
    # must not use outside
    odd = "in:put, dir"
    write(tmp_path / odd / "a.txt", "sea sea sea ship ship gull\n")
    text = (tmp_path / "m.yaml").read_text()
    (tmp_path / "m.yaml").write_text(text.replace("inputs: {text: data}", f'inputs: {{text: "{odd}"}}')
                                     .replace("env: {COLOR: blue}",
                                              "env: {COLOR: blue, TMPDIR: /nowhere/tmp}"))  # fmt: skip
    r = run(["apply", "m.yaml"], cwd=tmp_path,
            env={"HOST_ONLY": "1", "OSS_ACCESS_KEY_SECRET": "not-for-instances"})  # fmt: skip
    assert r.code == 0, r.out + r.err
    for i in (0, 1):
        assert (tmp_path / "out" / f"top-{i}.txt").read_text() == "sea 3\nship 2\n"
        out = (tmp_path / ".runner" / "logs" / "1" / "t" / f"{i}.1.out").read_text()
        # the instance's environment went in; the runner's own did not
        assert f"id={i} of 2 color=blue host=none secret=none tmp=/nowhere/tmp" in out
        assert "Read-only file system" in out  # the input is mounted read-only
        assert (tmp_path / ".runner" / "logs" / "1" / "t" / f"{i}.1.err").read_text() == (
            "to-stderr\n"
        )
    assert not (tmp_path / odd / "new").exists()
    assert containers_of(tmp_path / ".runner") == []  # --rm: nothing left


def test_a_new_tag_or_a_moved_tag_reruns_and_the_plan_says_so(
    tmp_path: Path, images: str, own_tag: str
) -> None:
    job(tmp_path, own_tag, instances=1)
    assert run(["apply", "m.yaml"], cwd=tmp_path).code == 0
    assert "up to date" in cli("plan", str(tmp_path / "m.yaml")).out
    # the same tag, pushed again with new content: the ID it points at changed
    subprocess.run(["podman", "tag", f"{images}:2", own_tag], check=True)
    plan = cli("plan", str(tmp_path / "m.yaml"))
    one = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", f"{images}:1"],
                         capture_output=True, text=True).stdout.strip()[:12]  # fmt: skip
    two = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", f"{images}:2"],
                         capture_output=True, text=True).stdout.strip()[:12]  # fmt: skip
    assert f"changed since run 1: image {own_tag} {one} -> {own_tag} {two}" in plan.out
    assert run(["apply", "m.yaml"], cwd=tmp_path).code == 0
    assert (tmp_path / "out" / "top-0.txt").read_text() == "sea 3 60.0%\nship 2 40.0%\n"
    # a new tag: the App's next revision
    (tmp_path / "m.yaml").write_text(
        (tmp_path / "m.yaml").read_text().replace(own_tag, f"{images}:1")
    )
    assert "image" in cli("plan", str(tmp_path / "m.yaml")).out
    listed = cli("apps", str(tmp_path / "m.yaml"))
    assert listed.code == 0 and f"{images}:1  tag 1  id {one}" in listed.out


def test_timeout_and_cancel_leave_no_container(tmp_path: Path, images: str) -> None:
    job(tmp_path, f"{images}:1", command="'sleep 60'", instances=1, extra="timeout: 2s")
    r = run(["apply", "m.yaml"], cwd=tmp_path)
    assert r.code == 1 and "timeout" in cli("status", "--state-dir",
                                            str(tmp_path / ".runner")).out  # fmt: skip
    assert containers_of(tmp_path / ".runner") == []
    other = tmp_path / "again"
    job(other, f"{images}:1", command="'sleep 60'", instances=2)
    p = subprocess.Popen([sys.executable, "-m", "runner", "apply", "m.yaml"], cwd=other,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    until(lambda: len(containers_of(other / ".runner")) == 2, p)
    assert run(["cancel", "1", "--state-dir", str(other / ".runner")], cwd=other).code == 0
    assert p.wait(timeout=60) != 0
    assert containers_of(other / ".runner") == []


def test_a_runner_killed_with_9_leaves_containers_that_the_next_apply_removes(
    tmp_path: Path, images: str
) -> None:
    job(tmp_path, f"{images}:1", command="'sleep $<secs>'", instances=2)
    p = subprocess.Popen([sys.executable, "-m", "runner", "apply", "m.yaml", "--set",
                          "t.secs=120"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    state = tmp_path / ".runner"
    until(lambda: len(containers_of(state)) == 2, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(1)
    assert len(containers_of(state)) == 2  # `podman run` died; its containers did not
    again = run(["apply", "m.yaml", "--set", "t.secs=0"], cwd=tmp_path)
    assert again.code == 0, again.out + again.err
    assert "was interrupted" in again.out
    assert containers_of(state) == []


def test_a_missing_image_or_runtime_is_an_error_before_anything_runs(
    tmp_path: Path, images: str
) -> None:
    job(tmp_path, f"{images}:9")
    r = run(["apply", "m.yaml"], cwd=tmp_path)
    assert r.code == 2 and "Traceback" not in r.err
    assert f"m.yaml: error: task 't': image '{images}:9' is not here" in r.err
    assert "imagePullPolicy is Never" in r.err
    job(tmp_path, "localhost/runner-test/nowhere:1", policy="IfNotPresent")
    r = run(["apply", "m.yaml"], cwd=tmp_path)
    assert r.code == 2 and "is not here and cannot be pulled (podman: " in r.err
    job(tmp_path, f"{images}:1")
    r = run(["apply", "m.yaml"], cwd=tmp_path, env={"PATH": "/nonexistent"})
    assert r.code == 2 and "but no container runtime is installed (podman or docker)" in r.err
    assert "hint: install one (Debian: apt-get install podman runc)" in r.err
    runs = cli("runs", "--state-dir", str(tmp_path / ".runner"))
    assert not (tmp_path / ".runner" / "state.db").exists() or "no runs yet" in runs.out


@pytest.mark.parametrize(("executor", "queue"), [("sge", "all.q"), ("slurm", "debug")])
def test_on_a_cluster_the_job_script_runs_the_container(
    tmp_path: Path, images: str, executor: str, queue: str
) -> None:
    job(tmp_path, f"{images}:2", extra="cluster: farm")
    write(tmp_path / "farm.yaml", f"""
        apiVersion: runner/v1
        kind: Cluster
        metadata: {{name: farm}}
        spec: {{executor: {executor}, queue: {queue}}}
        """)  # fmt: skip
    r = run(["apply", "m.yaml", "farm.yaml"], cwd=tmp_path, timeout=300,
            env={"OSS_ACCESS_KEY_SECRET": "not-for-instances"})  # fmt: skip
    assert r.code == 0, r.out + r.err
    assert (tmp_path / "out" / "top-1.txt").read_text() == "sea 3 60.0%\nship 2 40.0%\n"
    out = (tmp_path / ".runner" / "logs" / "1" / "t" / "1.1.out").read_text()
    assert "id=1 of 2 color=blue host=none secret=none tmp=none" in out
    assert containers_of(tmp_path / ".runner") == []


def test_an_image_entrypoint_does_not_swallow_the_command(tmp_path: Path, images: str) -> None:
    """Tool images often set an ENTRYPOINT: the task's command still runs as written."""
    tag = f"localhost/runner-test/entry-{uuid.uuid4().hex[:8]}:1"
    box = f"runner-test-entry-{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "create", "--name", box, f"{images}:1", "true"], check=True,
                   capture_output=True)  # fmt: skip
    try:
        subprocess.run(["podman", "commit", "--quiet", "--change",
                        'ENTRYPOINT ["/usr/local/bin/wordfreq"]', box, tag], check=True,
                       capture_output=True)  # fmt: skip
        job(tmp_path, tag, instances=1, command="'exit 3'")
        r = run(["apply", "m.yaml"], cwd=tmp_path)
        assert r.code == 1 and "exit code 3" in cli("status", "--state-dir",
                                                   str(tmp_path / ".runner")).out  # fmt: skip
    finally:
        subprocess.run(["podman", "rm", "--force", box], capture_output=True)
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)


def test_a_podman_run_killed_from_outside_takes_its_container_along(
    tmp_path: Path, images: str
) -> None:
    """What a scheduler does on scancel, qdel or a time limit: it kills `podman run`."""
    job(tmp_path, f"{images}:1", command="'sleep 60'", instances=1)
    p = subprocess.Popen([sys.executable, "-m", "runner", "apply", "m.yaml"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    state = tmp_path / ".runner"
    until(lambda: len(containers_of(state)) == 1, p)
    name = containers_of(state)[0]
    clients = [int(d) for d in os.listdir("/proc") if d.isdigit()
               and name.encode() in Path(f"/proc/{d}/cmdline").read_bytes()
               and b"podman\0run" in Path(f"/proc/{d}/cmdline").read_bytes()]  # fmt: skip
    assert len(clients) == 1
    os.kill(clients[0], signal.SIGKILL)
    assert p.wait(timeout=60) == 1
    assert containers_of(state) == []


def test_changed_run_args_rerun_and_a_wdl_task_cannot_have_an_image(
    tmp_path: Path, images: str
) -> None:
    job(tmp_path, f"{images}:1", instances=1, extra="runArgs: [--network=none]")
    assert run(["apply", "m.yaml"], cwd=tmp_path).code == 0
    text = (tmp_path / "m.yaml").read_text()
    (tmp_path / "m.yaml").write_text(text.replace("--network=none", "--network=host"))
    assert "changed since run 1: run args" in cli("plan", str(tmp_path / "m.yaml")).out
    write(tmp_path / "w.yaml", f"""
        apiVersion: runner/v1
        kind: Job
        metadata: {{name: w}}
        spec:
          tasks:
            call:
              kind: wdl
              image: {images}:1
              params: {{workflow: x.wdl}}
        """)  # fmt: skip
    said = cli("validate", str(tmp_path / "w.yaml"))
    assert said.code == 2 and "w.yaml:8:" in said.err
    assert "task 'call': a wdl task cannot run in an image" in said.err


def test_a_working_folder_per_instance_is_made_and_mounted(tmp_path: Path, images: str) -> None:
    job(tmp_path, f"{images}:1", command="'pwd > $<out>/where-$<instance_id>.txt'",
        extra='workdir: "scratch dir/$<instance_id>"')  # fmt: skip
    r = run(["apply", "m.yaml"], cwd=tmp_path)
    assert r.code == 0, r.out + r.err
    for i in (0, 1):
        where = (tmp_path / "out" / f"where-{i}.txt").read_text().strip()
        assert where == str(tmp_path / "scratch dir" / str(i))


def test_when_podman_itself_fails_the_reason_quotes_it(tmp_path: Path, images: str) -> None:
    """Exit codes 125-127 are the runtime's own failures (a network it cannot set up, a
    program not in the image): the instance's reason says what podman said, not only the
    code."""
    job(tmp_path, f"{images}:1", instances=1, extra="runArgs: [--network=no-such-network]")
    assert run(["apply", "m.yaml"], cwd=tmp_path).code == 1
    status = cli("status", "--state-dir", str(tmp_path / ".runner")).out
    assert "exit code 125; podman said: Error: unable to find network with name or ID " \
        "no-such-network: network not found" in status, status
    other = tmp_path / "other"
    job(other, f"{images}:1", instances=1, command="[no-such-tool]")
    assert run(["apply", "m.yaml"], cwd=other).code == 1
    status = cli("status", "--state-dir", str(other / ".runner")).out
    assert 'exit code 127; podman said: Error: ' in status and \
        'exec: "no-such-tool": executable file not found' in status, status
    assert containers_of(tmp_path / ".runner") == containers_of(other / ".runner") == []
