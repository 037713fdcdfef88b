"""The oss store and remote inputs, against the FAKE OSS server in fake_oss_server.py
(it checks V1/V4 signatures and CRC-64 as OSS does) and through the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_oss_server import FakeOSSServer  # a FAKE OSS server, beside this file
from runner_oss import OSSStore

from runner.contracts import StoreError, stage_input

KEY_ID = "LTAItestkey0001"
SECRET = "s3cr3t-never-to-be-seen-0f9e8d7c"


@pytest.fixture
def oss(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOSSServer]:
    with FakeOSSServer(KEY_ID, SECRET) as server:
        server.create_bucket("data")
        monkeypatch.setenv("OSS_ACCESS_KEY_ID", KEY_ID)
        monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
        monkeypatch.setenv("OSS_ENDPOINT", server.endpoint)
        monkeypatch.setenv("OSS_REGION", "cn-test")
        monkeypatch.setenv("RUNNER_OSS_CREDENTIALS", str(tmp_path / "no-such-file"))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        import runner.stores

        monkeypatch.setattr(runner.stores, "_STORES", {})
        yield server


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True
    )


def test_put_get_stat_list_delete_with_crc(oss: FakeOSSServer, tmp_path: Path) -> None:
    store = OSSStore()
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello oss\n" * 1000)
    info = store.put(src, "oss://data/in/a.txt")
    assert info.size == 10_000 and info.crc64
    assert store.stat("oss://data/in/a.txt") == info.__class__(
        "in/a.txt", 10_000, info.etag, info.crc64
    )
    assert store.stat("oss://data/in/missing") is None
    assert [o.key for o in store.list("oss://data/in/")] == ["a.txt"]
    dest = tmp_path / "copy.txt"
    store.get("oss://data/in/a.txt", dest)
    assert dest.read_bytes() == src.read_bytes()
    store.delete("oss://data/in/a.txt")
    assert store.stat("oss://data/in/a.txt") is None


def test_a_corrupted_download_is_an_error_and_leaves_no_file(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    store = OSSStore()
    oss.put_object("data", "x.bin", os.urandom(5000))
    oss.corrupt_crc = True
    with pytest.raises(StoreError, match="CRC-64"):
        store.get("oss://data/x.bin", tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_wrong_secret_is_a_clear_error_without_the_secret(
    oss: FakeOSSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "wrong-" + SECRET)
    with pytest.raises(StoreError) as e:
        OSSStore().stat("oss://data/anything")
    assert "SignatureDoesNotMatch" in str(e.value)
    assert SECRET not in str(e.value)


def test_staging_fetches_only_what_changed(oss: FakeOSSServer, tmp_path: Path) -> None:
    for i in range(20):
        oss.put_object("data", f"set/part-{i:02d}.txt", f"line {i}\n".encode())
    local = tmp_path / "cache" / "set"
    assert stage_input("oss://data/set/", local)[:2] == (20, 0)
    assert sorted(p.name for p in local.iterdir())[:2] == ["part-00.txt", "part-01.txt"]
    assert (local / "part-00.txt").stat().st_mode & 0o222 == 0  # read-only
    oss.reset_counters()
    assert stage_input("oss://data/set/", local)[:2] == (0, 20)
    assert oss.requests.get("GetObject", 0) == 0  # nothing fetched twice
    oss.put_object("data", "set/part-03.txt", b"changed\n")
    OSSStore().delete("oss://data/set/part-19.txt")
    assert stage_input("oss://data/set/", local)[:2] == (1, 18)
    assert (local / "part-03.txt").read_text() == "changed\n"
    assert not (local / "part-19.txt").exists()  # gone from the prefix, gone here
    # a prefix written without its final slash is the same prefix
    assert stage_input("oss://data/set", tmp_path / "again")[:2] == (19, 0)
    assert (tmp_path / "again" / "part-03.txt").read_text() == "changed\n"


MANIFEST = """\
apiVersion: runner/v1
kind: App
metadata: {name: count}
spec:
  command: cat $<data>/*.txt | wc -l > $<out>/lines.txt
  inputs: {data: {description: text files}}
  outputs: {out: {description: the count}}
---
apiVersion: runner/v1
kind: Job
metadata: {name: j}
spec:
  tasks:
    count:
      app: count
      inputs: {data: "oss://data/set/"}
      outputs: {out: out}
"""


def test_a_job_reads_a_remote_prefix_and_reruns_only_when_it_changes(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    for i in range(5):
        oss.put_object("data", f"set/{i}.txt", b"a\nb\n")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out" / "lines.txt").read_text().strip() == "10"
    assert "5 fetched, 0 unchanged" in r.stdout
    again = runner("plan", "m.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr  # nothing changed: nothing to do
    oss.put_object("data", "set/9.txt", b"c\n")
    plan = runner("plan", "m.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert plan.returncode == 2 and "input data" in plan.stdout
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 fetched, 5 unchanged" in r.stdout
    assert (tmp_path / "out" / "lines.txt").read_text().strip() == "11"
    # the secret is nowhere the runner wrote
    everything = r.stdout + r.stderr + plan.stdout + plan.stderr
    for path in (tmp_path / ".runner").rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode(errors="replace")
    db = sqlite3.connect(tmp_path / ".runner" / "state.db")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        everything += json.dumps(db.execute(f"SELECT * FROM {table}").fetchall(), default=str)
    assert SECRET not in everything


def test_a_missing_input_is_named_before_anything_runs(oss: FakeOSSServer, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST.replace("oss://data/set/", "oss://data/nope/"))
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "task 'count'" in r.stderr and "input 'data'" in r.stderr
    assert "oss://data/nope/: no such object or prefix" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_an_unreadable_input_is_named_before_anything_runs(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    for i in range(3):
        oss.put_object("data", f"set/{i}.txt", b"a\n")
    oss.deny_get.add(("data", "set/"))  # listed fine, but reading is refused
    (tmp_path / "m.yaml").write_text(MANIFEST)
    for command in ("plan", "apply"):
        r = runner(command, "m.yaml", cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "task 'count'" in r.stderr and "input 'data' is not readable" in r.stderr
        assert "oss://data/set/0.txt: AccessDenied" in r.stderr
        assert "Traceback" not in r.stderr and SECRET not in r.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_an_apply_lists_a_remote_input_once_to_plan_and_once_to_stage(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    for i in range(5):
        oss.put_object("data", f"set/{i}.txt", b"a\n")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    oss.reset_counters()
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert oss.requests["ListObjectsV2"] == 2, oss.requests
    assert oss.requests["GetObject"] == 5 + 1  # the objects, and the pre-flight's one byte
    # the fingerprint recorded is the staged version: nothing to do afterwards
    again = runner("plan", "m.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


PASSED = """\
apiVersion: runner/v1
kind: Job
metadata: {name: relay}
spec:
  tasks:
    make:
      instances: 2
      command: echo made-$<instance_id>-$<tag> > $<out>/part-$<instance_id>.txt
      params: {tag: one}
      outputs: {out: "oss://data/relay/"}
    use:
      dependsOn: [make]
      command: cat $<parts>/part-*.txt > $<report>/all.txt
      inputs: {parts: "oss://data/relay/"}
      outputs: {report: out}
"""


def test_a_task_reads_what_its_upstream_task_stored(oss: FakeOSSServer, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(PASSED)
    r = runner("apply", "m.yaml", cwd=tmp_path)  # the input does not exist until `make` ran
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out" / "all.txt").read_text() == "made-0-one\nmade-1-one\n"
    again = runner("plan", "m.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    (tmp_path / "m.yaml").write_text(PASSED.replace("tag: one", "tag: two"))
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out" / "all.txt").read_text() == "made-0-two\nmade-1-two\n"


def test_the_run_record_is_stored_when_the_run_starts_and_ends_after_a_crash(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    import signal

    text = LOGGED.replace("LOGS", "oss://data/logs/").replace(
        "echo err-$<instance_id> >&2", f"test -e {tmp_path}/go || sleep 60"
    )
    (tmp_path / "m.yaml").write_text(text)
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", "m.yaml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while "logs/j/1/run.jsonl" not in oss.list_keys("data", "logs/"):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.05)
    first = [json.loads(x) for x in oss.get_object("data", "logs/j/1/run.jsonl").splitlines()]
    assert first[0]["type"] == "run" and first[0]["state"] == "running"
    assert first[0]["manifest_digest"] and any(x["type"] == "task" for x in first)
    p.send_signal(signal.SIGKILL)  # the runner dies mid-run
    p.communicate(timeout=30)
    (tmp_path / "go").touch()
    r = runner("apply", "m.yaml", cwd=tmp_path)  # reclaims run 1, runs again as run 2
    assert "run 1 of job j was interrupted" in r.stdout, r.stdout + r.stderr
    ended = [json.loads(x) for x in oss.get_object("data", "logs/j/1/run.jsonl").splitlines()]
    assert ended[0]["state"] != "running" and "runner pid" in ended[0]["reason"]


def test_staging_survives_a_flaky_service_and_never_accepts_a_bad_crc(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    blobs = {f"many/{i:03d}.bin": os.urandom(1000 + i) for i in range(200)}
    for key, data in blobs.items():
        oss.put_object("data", key, data)
    oss.fail_rate = 0.1  # 5xx
    oss.drop_rate = 0.05  # connections closed without an answer
    local = tmp_path / "many"
    assert stage_input("oss://data/many/", local)[:2] == (200, 0)
    assert sum(oss.injected.values()) > 10  # the faults did happen
    for key, data in blobs.items():
        assert (local / key.removeprefix("many/")).read_bytes() == data
    oss.reset_faults()
    oss.put_object("data", "many/000.bin", b"new content")
    oss.corrupt_crc = True
    with pytest.raises(StoreError, match="CRC-64"):
        stage_input("oss://data/many/", local)
    assert (local / "000.bin").read_bytes() == blobs["many/000.bin"]  # the old copy stays


PRODUCE = """\
apiVersion: runner/v1
kind: Cluster
metadata: {{name: here}}
spec: {{executor: local, slots: 4}}
---
apiVersion: runner/v1
kind: Job
metadata: {{name: p}}
spec:
  cluster: here
  tasks:
    make:
      instances: 4
      retries: 1
      retryBackoff: 1s
      command: >-
        mkdir -p $<out>/part-$<instance_id> &&
        for i in $(seq 50); do echo $<instance_id>-$i > $<out>/part-$<instance_id>/$i.txt; done &&
        {fail}
      outputs: {{out: "oss://data/results/"}}
"""


def test_outputs_are_uploaded_per_instance_after_success_only(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    # instance 2 writes its files and then fails on its first attempt
    fail = (
        'if [ $<instance_id> = 2 ] && [ "$RUNNER_ATTEMPT" = 1 ]; then '
        "echo half > $<out>/partial.txt; exit 3; fi"
    )
    (tmp_path / "m.yaml").write_text(PRODUCE.format(fail=fail))
    oss.fail_rate = 0.1
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    oss.reset_faults()
    keys = set(oss.list_keys("data", "results/"))
    assert len(keys) == 200  # 4 instances x 50 files, each verified by CRC-64 on the way
    assert "results/partial.txt" not in keys  # the failed attempt's file never went up
    assert oss.get_object("data", "results/part-3/7.txt") == b"3-7\n"
    assert "output out: 50 file(s) to oss://data/results/" in r.stdout


def test_an_output_that_cannot_be_stored_fails_the_instance(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    oss.create_bucket("brief")
    text = PRODUCE.format(fail="sleep 1.5").replace("oss://data/results/", "oss://brief/r/")
    (tmp_path / "m.yaml").write_text(text.replace("instances: 4", "instances: 1"))
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", "m.yaml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not oss.requests.get("DeleteObject") and time.monotonic() < deadline:
        time.sleep(0.05)  # the pre-flight's probe is written and removed: the run starts
    time.sleep(0.3)
    oss.delete_bucket("brief")  # gone while the instance runs: its upload fails
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, out + err
    assert "output out not stored (oss://brief/r/)" in out
    assert "NoSuchBucket" in out and SECRET not in out + err


def test_runner_oss_ls_cp_cat(oss: FakeOSSServer, tmp_path: Path) -> None:
    (tmp_path / "up" / "sub").mkdir(parents=True)
    (tmp_path / "up" / "a.txt").write_text("alpha\n")
    (tmp_path / "up" / "sub" / "b.txt").write_text("beta\n")
    r = runner("oss", "cp", "up", "oss://data/tree/", cwd=tmp_path)
    assert r.returncode == 0 and "2 file(s) copied" in r.stdout, r.stderr
    ls = runner("oss", "ls", "oss://data/tree/", cwd=tmp_path)
    assert ls.returncode == 0
    assert [line.split()[-1] for line in ls.stdout.splitlines()] == ["a.txt", "sub/b.txt"]
    cat = runner("oss", "cat", "oss://data/tree/sub/b.txt", cwd=tmp_path)
    assert cat.returncode == 0 and cat.stdout == "beta\n"
    down = runner("oss", "cp", "oss://data/tree/", "down", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "down" / "sub" / "b.txt").read_text() == "beta\n"
    missing = runner("oss", "cat", "oss://data/tree/nope", cwd=tmp_path)
    assert missing.returncode == 2 and "oss://data/tree/nope" in missing.stderr
    assert "Traceback" not in missing.stderr and SECRET not in missing.stderr


def test_a_credentials_file_must_be_private(
    oss: FakeOSSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_REGION"):
        monkeypatch.delenv(var)
    creds = tmp_path / "creds"
    creds.write_text(
        f"access_key_id = {KEY_ID}\naccess_key_secret = {SECRET}\n\n"
        f"[bucket data]\nendpoint = {oss.endpoint}\nregion = cn-test\n"
    )
    monkeypatch.setenv("RUNNER_OSS_CREDENTIALS", str(creds))
    creds.chmod(0o644)
    r = runner("oss", "ls", "oss://data/", cwd=tmp_path)
    assert r.returncode == 2 and "readable by others" in r.stderr and "chmod 600" in r.stderr
    assert SECRET not in r.stderr
    creds.chmod(0o600)
    oss.put_object("data", "k.txt", b"x")
    r = runner("oss", "ls", "oss://data/", cwd=tmp_path)
    assert r.returncode == 0 and "k.txt" in r.stdout, r.stderr


LOGGED = """\
apiVersion: runner/v1
kind: Job
metadata: {name: j}
spec:
  tasks:
    t:
      instances: 2
      command: echo out-$<instance_id>; echo err-$<instance_id> >&2
      logs: LOGS
"""


@pytest.mark.parametrize("where", ["oss://data/logs/", "shipped"])
def test_logs_and_the_run_record_are_stored_and_read_back(
    oss: FakeOSSServer, tmp_path: Path, where: str
) -> None:
    (tmp_path / "m.yaml").write_text(LOGGED.replace("LOGS", where))
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    if where.startswith("oss://"):
        stored = oss.get_object("data", "logs/j/1/t/1/1/stdout")
        record = oss.get_object("data", "logs/j/1/run.jsonl").decode()
    else:
        stored = (tmp_path / "shipped" / "j" / "1" / "t" / "1" / "1" / "stdout").read_bytes()
        record = (tmp_path / "shipped" / "j" / "1" / "run.jsonl").read_text()
    assert stored == b"out-1\n"
    lines = [json.loads(line) for line in record.splitlines()]
    assert lines[0]["type"] == "run" and lines[0]["state"] == "succeeded"
    attempts = [x for x in lines if x["type"] == "attempt"]
    assert sorted((a["instance"], a["exit_code"]) for a in attempts) == [(0, 0), (1, 0)]
    assert all(a["stdout"].startswith(where if "://" in where else str(tmp_path)) for a in attempts)
    # the machine's own copies are gone: `runner logs` reads the stored ones
    import shutil

    shutil.rmtree(tmp_path / ".runner" / "logs")
    shown = runner("logs", "1", "t/0", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "out-0" in shown.stdout and "err-0" in shown.stdout
    assert SECRET not in record + shown.stdout + shown.stderr


def test_an_output_glob_stores_only_matching_files(oss: FakeOSSServer, tmp_path: Path) -> None:
    text = PRODUCE.format(fail="touch $<out>/keep.png $<out>/skip.tmp").replace(
        "oss://data/results/", "oss://data/globbed/*.png"
    )
    (tmp_path / "m.yaml").write_text(text.replace("instances: 4", "instances: 1"))
    r = runner("apply", "m.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert oss.list_keys("data", "globbed/") == ["globbed/keep.png"]


def test_an_unwritable_output_is_named_before_anything_runs(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    text = PRODUCE.format(fail="true").replace("oss://data/results/", "oss://nobucket/r/")
    (tmp_path / "m.yaml").write_text(text)
    for command in ("plan", "apply"):
        r = runner(command, "m.yaml", cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "task 'make'" in r.stderr and "output 'out' is not writable" in r.stderr
        assert "oss://nobucket/r/" in r.stderr and "NoSuchBucket" in r.stderr
    assert not list((tmp_path / ".runner" / "logs").rglob("*.out"))  # nothing ran
    assert not [k for k in oss.list_keys("data") if "write-check" in k]


def test_ctrl_c_while_inputs_are_fetched_cancels_the_task(
    oss: FakeOSSServer, tmp_path: Path
) -> None:
    import signal

    for i in range(24):
        oss.put_object("data", f"set/{i}.txt", b"a\n")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    oss.delay = 0.25  # a slow service: fetching takes a while
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", "m.yaml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    # the plan reads one byte of the input (its pre-flight); then staging fetches
    while oss.requests.get("GetObject", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    assert "cancelled" in out and not (tmp_path / "out" / "lines.txt").exists()
    assert "Traceback" not in err
