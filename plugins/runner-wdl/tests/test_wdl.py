"""The `wdl` kind: WDL workflows on the embedded miniwdl engine with the container-less
backend, with real tools (Debian's bwa, samtools, bcftools, picard) and real schedulers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_cromwell import FakeCromwell  # a FAKE Cromwell, beside this file

ROOT = Path(__file__).resolve().parents[3]
GERMLINE = ROOT / "manifests" / "examples" / "germline"


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True
    )


def test_the_germline_example_calls_every_planted_snp(tmp_path: Path) -> None:
    shutil.copytree(GERMLINE, tmp_path / "g", ignore=shutil.ignore_patterns("data*", "out"))
    g = tmp_path / "g"
    # one job: the data, then processing, then calling on what processing made
    first = runner("apply", ".", cwd=g)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 succeeded" in first.stdout, first.stdout
    vcf = subprocess.run(
        ["bcftools", "query", "-f", "%POS\t%REF\t%ALT\t[%GT]\n", "out/calling/vcf/calls.vcf.gz"],
        cwd=g, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    called = {tuple(line.split("\t")) for line in vcf.splitlines()}
    truth = (g / "data" / "truth.tsv").read_text().splitlines()[1:]
    planted = {tuple(line.split("\t")) for line in truth}
    assert len(planted) == 14 and planted <= called, planted - called
    # done is done: nothing runs again, and miniwdl's log is there to read
    again = runner("apply", ".", cwd=g)
    assert "Nothing to do" in again.stdout, again.stdout + again.stderr
    log = runner("logs", "1", "process/0", cwd=g)
    assert "call-mark_duplicates" in log.stdout and "done" in log.stdout
    # an input file that changes makes the workflow (and what depends on it) run again
    os.utime(g / "data" / "reads_1.fq")
    plan = runner("plan", ".", "--detailed-exitcode", cwd=g)
    assert plan.returncode == 2 and "extra files" in plan.stdout, plan.stdout
    assert "upstream task 'process' runs" in plan.stdout, plan.stdout


TWO_STEPS = """\
version 1.0
workflow two {
  input { String word = "hi"  File marker }
  call first { input: word = word }
  call second { input: text = first.out, marker = marker }
  output { File result = second.out  Array[File] parts = first.parts }
}
task first {
  input { String word }
  command <<< echo ~{word} > first.txt; echo ~{word} > extra.txt; echo ran >> FIRST_RUNS >>>
  output { File out = "first.txt"  Array[File] parts = glob("*.txt") }
}
task second {
  input { File text  File marker }
  command <<< grep -q fixed ~{marker} && cat ~{text} > second.txt >>>
  output { File out = "second.txt" }
}
"""
JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: w}
spec:
  tasks:
    flow:
      kind: wdl
      params:
        workflow: two.wdl
        inputs: {marker: marker.txt}
      outputs: {out: out}
"""


def test_after_a_fixed_failure_finished_calls_come_from_the_call_cache(tmp_path: Path) -> None:
    (tmp_path / "two.wdl").write_text(TWO_STEPS.replace("FIRST_RUNS", str(tmp_path / "first-runs")))
    (tmp_path / "m.yaml").write_text(JOB)
    (tmp_path / "marker.txt").write_text("broken\n")
    failed = runner("apply", "m.yaml", cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "call-second" in failed.stdout and "CommandFailed" in failed.stdout, failed.stdout
    (tmp_path / "marker.txt").write_text("fixed\n")
    fixed = runner("apply", "m.yaml", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert (tmp_path / "out" / "result" / "second.txt").read_text() == "hi\n"
    # a glob output: every file it matched, copied
    assert sorted(f.name for f in (tmp_path / "out" / "parts").iterdir()) == [
        "extra.txt", "first.txt"
    ]  # fmt: skip
    assert (tmp_path / "first-runs").read_text() == "ran\n"  # `first` ran once: cached after
    log = runner("logs", "2", "flow/0", "--stream", "err", cwd=tmp_path).stdout
    assert "cached" in log, log


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("workflow: two.wdl|workflow: nope.wdl", "nope.wdl: no such file"),
        ("{marker: marker.txt}|{marker: marker.txt, colour: red}", "unknown input/output: colour"),
        (
            "{marker: marker.txt}|{marker: marker.txt, word: [1]}",
            "couldn't construct 'String?' from [1] (in word)",
        ),
        ("{marker: marker.txt}|{word: hi}", "missing required inputs/outputs: marker"),
        ("{marker: marker.txt}|{marker: gone.txt}", "input file 'gone.txt': no such file"),
        ("inputs:|engine: cromwell\n        inputs:", "engine cromwell needs the server's address"),
        ("inputs:|backend: dokker\n        inputs:", "no miniwdl backend 'dokker'"),
    ],
)
def test_validate_checks_the_workflow_and_its_inputs(
    tmp_path: Path, change: str, said: str
) -> None:
    (tmp_path / "two.wdl").write_text(TWO_STEPS)
    (tmp_path / "marker.txt").write_text("fixed\n")
    old, new = change.split("|")
    (tmp_path / "m.yaml").write_text(JOB.replace(old, new))
    r = runner("validate", "m.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and "m.yaml:" in r.stderr and "Traceback" not in r.stderr


def test_an_input_file_an_upstream_task_makes_need_not_exist_yet(tmp_path: Path) -> None:
    """A file below an output folder of a task this one depends on (directly or not) is made
    before the workflow runs: `validate` takes it; a missing file anywhere else is an error."""
    (tmp_path / "two.wdl").write_text(TWO_STEPS)
    upstream = (
        "    make:\n      command: mkdir -p $<made>/sub && echo fixed > $<made>/sub/marker.txt\n"
        "      outputs: {made: made}\n"
        "    middle: {dependsOn: [make], command: 'true'}\n"
    )
    job = JOB.replace("  tasks:\n", "  tasks:\n" + upstream).replace(
        "      kind: wdl\n", "      kind: wdl\n      dependsOn: [middle]\n"
    ).replace("{marker: marker.txt}", "{marker: made/sub/marker.txt}")
    (tmp_path / "m.yaml").write_text(job)
    r = runner("validate", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    done = runner("apply", "m.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "result" / "second.txt").read_text() == "hi\n"
    # not below what an upstream task writes: still an error
    (tmp_path / "m.yaml").write_text(job.replace("made/sub/marker.txt", "elsewhere/marker.txt"))
    r = runner("validate", "m.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "input file 'elsewhere/marker.txt': no such file" in r.stderr


def test_a_wdl_error_is_shown_at_its_line_in_the_wdl(tmp_path: Path) -> None:
    (tmp_path / "two.wdl").write_text(TWO_STEPS.replace("text = first.out", "text = frist.out"))
    (tmp_path / "marker.txt").write_text("fixed\n")
    (tmp_path / "m.yaml").write_text(JOB)
    r = runner("validate", "m.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "two.wdl:5:" in r.stderr and "frist" in r.stderr, r.stderr


def test_ctrl_c_stops_the_workflow_and_leaves_no_process(tmp_path: Path) -> None:
    (tmp_path / "slow.wdl").write_text(
        "version 1.0\nworkflow slow {\n  scatter (i in [1, 2]) { call nap }\n}\n"
        "task nap {\n  command <<< sleep 300 & sleep 301; wait >>>\n}\n"
    )
    (tmp_path / "m.yaml").write_text(JOB.replace("two.wdl", "slow.wdl").replace(
        "        inputs: {marker: marker.txt}\n", ""
    ))  # fmt: skip
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", "m.yaml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(_sleepers()) < 4:
        assert time.monotonic() < deadline and p.poll() is None, "the tasks never started"
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    deadline = time.monotonic() + 15
    while _sleepers():
        assert time.monotonic() < deadline, f"left behind: {_sleepers()}"
        time.sleep(0.2)


def _sleepers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if cmd[:2] in ([b"sleep", b"300"], [b"sleep", b"301"]) and state != "Z":
            found.append(int(proc.name))
    return found


def test_a_workflow_runs_on_the_sge_cluster(tmp_path: Path) -> None:
    (tmp_path / "two.wdl").write_text(TWO_STEPS.replace("FIRST_RUNS", "/dev/null"))
    (tmp_path / "marker.txt").write_text("fixed\n")
    (tmp_path / "m.yaml").write_text(
        JOB.replace("spec:\n  tasks:", "spec:\n  cluster: farm\n  tasks:")
        + "---\napiVersion: runner/v1\nkind: Cluster\nmetadata: {name: farm}\n"
        "spec: {executor: sge}\n"
    )
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out" / "result" / "second.txt").read_text() == "hi\n"
    assert list((tmp_path / ".runner").rglob(".sge-*/job.sh"))


CROMWELL_JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: w}
spec:
  tasks:
    flow:
      kind: wdl
      params:
        workflow: two.wdl
        engine: cromwell
        cromwell: {url: URL}
        options: {final_workflow_outputs_dir: /results}
        inputs: {marker: marker.txt, word: WORD}
      outputs: {out: out}
"""


def _cromwell_job(tmp_path: Path, url: str, word: str) -> None:
    (tmp_path / "two.wdl").write_text(TWO_STEPS)
    (tmp_path / "marker.txt").write_text("fixed\n")
    text = CROMWELL_JOB.replace("URL", url).replace("WORD", word)
    (tmp_path / "m.yaml").write_text(text.replace("    flow:", "    flow:\n      timeout: 5m"))


def test_cromwell_engine_submits_follows_and_fetches_outputs(tmp_path: Path) -> None:
    with FakeCromwell(run_seconds=1.0) as server:
        server.outputs_for = lambda inputs: {"two.result": str(tmp_path / "marker.txt")}
        _cromwell_job(tmp_path, server.url, "hello")
        r = runner("apply", "m.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        (w,) = server.workflows.values()
        # what Cromwell got: the WDL, namespaced inputs with absolute paths, options, labels
        assert "workflow two" in w["source"]
        assert w["inputs"] == {"two.marker": str(tmp_path / "marker.txt"), "two.word": "hello"}
        assert w["options"] == {"final_workflow_outputs_dir": "/results"}
        assert w["labels"] == {"runner-job": "w", "runner-task": "flow"}
        outputs = (tmp_path / "out" / "outputs.json").read_text()
        assert str(tmp_path / "out" / "result" / "marker.txt") in outputs
        assert (tmp_path / "out" / "result" / "marker.txt").read_text() == "fixed\n"


def test_cromwell_failure_is_reported_with_its_cause(tmp_path: Path) -> None:
    with FakeCromwell(run_seconds=0.5) as server:
        _cromwell_job(tmp_path, server.url, "FAIL")
        r = runner("apply", "m.yaml", cwd=tmp_path)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Job two.second:NA:1 exited with return code 1" in r.stdout, r.stdout


def test_cancel_aborts_the_cromwell_workflow(tmp_path: Path) -> None:
    with FakeCromwell(run_seconds=300) as server:
        _cromwell_job(tmp_path, server.url, "slow")
        p = subprocess.Popen(
            [sys.executable, "-m", "runner", "apply", "m.yaml"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not server.workflows:
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130, out + err
        (w,) = server.workflows.values()
        assert w["status"] == "Aborted"
        assert ("POST", f"/api/workflows/v1/{w['id']}/abort") in server.requests


def test_cromwell_gets_an_inputs_file_namespaced_with_absolute_paths(tmp_path: Path) -> None:
    """An inputs file travels by name (a 30x sample list can outgrow a command line)."""
    with FakeCromwell(run_seconds=0.3) as server:
        _cromwell_job(tmp_path, server.url, "x")
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "big.yaml").write_text("two.marker: ../marker.txt\nword: hey\n")
        text = (tmp_path / "m.yaml").read_text()
        (tmp_path / "m.yaml").write_text(
            text.replace("inputs: {marker: marker.txt, word: x}", "inputs: in/big.yaml")
        )
        r = runner("apply", "m.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        (w,) = server.workflows.values()
        assert w["inputs"] == {"two.marker": str(tmp_path / "marker.txt"), "two.word": "hey"}


def test_a_retry_follows_the_same_cromwell_workflow_and_never_a_changed_one(
    tmp_path: Path,
) -> None:
    with FakeCromwell(run_seconds=300) as server:
        (tmp_path / "two.wdl").write_text(TWO_STEPS)
        (tmp_path / "marker.txt").write_text("fixed\n")
        id_file = tmp_path / "wid"

        def start(word: str) -> subprocess.Popen[str]:
            argv = [sys.executable, "-m", "runner_wdl.cromwell", "--url", server.url,
                    "--workflow", "two.wdl", "--inputs-json",
                    f'{{"two.marker": "{tmp_path}/marker.txt", "two.word": "{word}"}}',
                    "--id-file", str(id_file), "--poll", "0.2"]  # fmt: skip
            return subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)

        first = start("a")
        deadline = time.monotonic() + 30
        while not id_file.exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)  # the attempt dies; its workflow runs on
        first.communicate()
        again = start("a")  # the same: followed
        time.sleep(1.5)
        again.send_signal(signal.SIGKILL)
        _, err = again.communicate()
        assert "following Cromwell workflow" in err and len(server.workflows) == 1
        changed = start("b")  # changed inputs: the old one is aborted, a new one submitted
        time.sleep(1.5)
        changed.send_signal(signal.SIGTERM)
        changed.communicate()
        assert len(server.workflows) == 2
        old = [w for w in server.workflows.values() if w["inputs"]["two.word"] == "a"]
        assert old[0]["status"] == "Aborted"


MAIN = """\
version 1.0
import "lib/steps.wdl" as steps
workflow main {
  input { String word = "hi" }
  call steps.say { input: word = word }
  output { File said = say.out }
}
"""
STEPS = """\
version 1.0
task say {
  input { String word }
  command <<< echo ~{word} > said.txt >>>
  output { File out = "said.txt" }
}
"""
REMOTE_JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: r}
spec:
  tasks:
    flow:
      kind: wdl
      params: {workflow: "URI", inputs: {word: remote}}
      outputs: {out: out}
"""


def test_a_workflow_at_an_http_uri_is_fetched_with_its_imports(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    site = tmp_path / "site"
    (site / "wdl" / "lib").mkdir(parents=True)
    (site / "wdl" / "main.wdl").write_text(MAIN)
    (site / "wdl" / "lib" / "steps.wdl").write_text(STEPS)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/wdl/main.wdl"
        (tmp_path / "m.yaml").write_text(REMOTE_JOB.replace("URI", url))
        r = runner("apply", "m.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (tmp_path / "out" / "said" / "said.txt").read_text() == "remote\n"
        missing = REMOTE_JOB.replace("URI", url.replace("main.wdl", "nope.wdl"))
        (tmp_path / "m.yaml").write_text(missing)
        bad = runner("validate", "m.yaml", cwd=tmp_path)
        assert bad.returncode == 2 and "cannot fetch it" in bad.stderr, bad.stderr
        assert "404" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        server.shutdown()


def test_a_workflow_on_oss_is_fetched_through_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_oss_server import FakeOSSServer  # runner-oss's tests (pytest's pythonpath)

    with FakeOSSServer("LTAIwdltest", "wdl-secret") as oss:
        oss.create_bucket("flows")
        oss.put_object("flows", "wdl/main.wdl", MAIN.encode())
        oss.put_object("flows", "wdl/lib/steps.wdl", STEPS.encode())
        monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAIwdltest")
        monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "wdl-secret")
        monkeypatch.setenv("OSS_ENDPOINT", oss.endpoint)
        monkeypatch.setenv("RUNNER_OSS_CREDENTIALS", str(tmp_path / "none"))
        (tmp_path / "m.yaml").write_text(REMOTE_JOB.replace("URI", "oss://flows/wdl/main.wdl"))
        r = runner("apply", "m.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (tmp_path / "out" / "said" / "said.txt").read_text() == "remote\n"


IN_IMAGE = """\
version 1.0
workflow counted {
  input { File text }
  call count { input: text = text }
  output { File top = count.top }
}
task count {
  input { File text }
  command <<<
    wordfreq 2 ~{text} > top.txt
  >>>
  output { File top = "top.txt" }
  runtime { docker: "IMAGE" }
}
"""


def test_calls_run_in_their_images_with_podman_when_asked(tmp_path: Path) -> None:
    """`backend: podman`: miniwdl's podman backend runs each call in its `runtime.docker`
    image, one that exists only on this machine (miniwdl alone would try to pull it)."""
    build = ROOT / "manifests" / "examples" / "container" / "build-image.sh"
    base = "localhost/runner-test/wdl-wordfreq"
    subprocess.run([str(build), base], check=True, capture_output=True)
    # miniwdl runs a call's command with bash; busybox has none, so its sh stands in
    box, image = f"wdl-bash-{os.getpid()}", f"{base}-bash:1"
    try:
        subprocess.run(["podman", "run", "--name", box, f"{base}:1", "sh", "-c",
                        'printf "#!/bin/sh\\nexec /bin/sh \\"\\$@\\"\\n" > /bin/bash;'
                        " chmod 755 /bin/bash"], check=True, capture_output=True)  # fmt: skip
        subprocess.run(["podman", "commit", "--quiet", box, image], check=True,
                       capture_output=True)  # fmt: skip
    finally:
        subprocess.run(["podman", "rm", "--force", box], capture_output=True)
    (tmp_path / "counted.wdl").write_text(IN_IMAGE.replace("IMAGE", image))
    (tmp_path / "words.txt").write_text("sea sea sea ship ship gull\n")
    (tmp_path / "m.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: counted}\nspec:\n  tasks:\n"
        "    count:\n      kind: wdl\n      params:\n        workflow: counted.wdl\n"
        "        inputs: {text: words.txt}\n        backend: podman\n"
        "      outputs: {out: out}\n"
    )
    try:
        r = runner("apply", "m.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert shutil.which("wordfreq") is None  # it ran in the image
        tops = list((tmp_path / "out").rglob("top.txt"))
        assert len(tops) == 1 and tops[0].read_text() == "sea 3\nship 2\n"
        log = runner("logs", "1", "count/0", cwd=tmp_path).stdout
        assert "podman invocation" in log and image in log
    finally:
        # the calls' containers too (miniwdl names them), should a call have been left running
        calls = subprocess.run(["podman", "ps", "--all", "--quiet", "--filter",
                                f"ancestor={image}"], capture_output=True, text=True)  # fmt: skip
        if calls.stdout.split():
            subprocess.run(["podman", "rm", "--force", *calls.stdout.split()], capture_output=True)
        subprocess.run(["podman", "rmi", "--force", image], capture_output=True)
