"""Real processes through the real CLI: fan-out/fan-in, injection, retries, timeouts, cancel,
locks, kill -9 then re-apply. Nothing here is faked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli, run, write

CLUSTER = """
apiVersion: runner/v1
kind: Cluster
metadata: {name: here}
spec: {executor: local, slots: 2}
---
"""


def job(tasks: str, name: str = "j") -> str:
    body = "\n".join("    " + line for line in tasks.strip("\n").splitlines())
    return (
        CLUSTER
        + f"apiVersion: runner/v1\nkind: Job\nmetadata: {{name: {name}}}\n"
        + (f"spec:\n  cluster: here\n  tasks:\n{body}\n")
    )


def marker_alive(marker: str) -> bool:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return bool(out.stdout.strip())


def wait_for(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def start_apply(m: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "apply", str(m), *extra],
        cwd=m.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status_json(d: Path, run_id: int | None = None) -> dict:  # type: ignore[type-arg]
    args = ["status", "--state-dir", str(d / ".runner"), "-o", "json"]
    if run_id is not None:
        args.insert(1, str(run_id))
    r = cli(*args)
    assert r.code == 0, r.err
    return json.loads(r.out)  # type: ignore[no-any-return]


def test_fan_out_fan_in_then_nothing_to_do(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
parts:
  instances: 4
  command: echo $RUNNER_INSTANCE_ID/$RUNNER_INSTANCE_COUNT $BATCH_COMPUTE_DAG_INSTANCE_ID > $<out>/p$<instance_id>
  outputs: {out: parts}
sum:
  dependsOn: [parts]
  command: cat $<in>/p* > total.txt
  inputs: {in: parts}
"""),
    )
    r = run(["apply", str(m)])
    assert r.code == 0, r.out + r.err
    assert (workdir / "total.txt").read_text().split("\n")[:4] == [
        "0/4 0",
        "1/4 1",
        "2/4 2",
        "3/4 3",
    ]
    again = run(["apply", str(m)])
    assert again.code == 0
    assert "Nothing to do" in again.out
    p = cli("plan", str(m), "--detailed-exitcode")
    assert p.code == 0, p.out
    assert "up to date (succeeded in run 1)" in p.out


def test_values_never_become_shell(workdir: Path) -> None:
    evil = "x; touch pwned $(id) `id` '\""
    m = write(
        workdir / "m.yaml",
        CLUSTER
        + """
apiVersion: runner/v1
kind: App
metadata: {name: echoer}
spec:
  command: printf '%s\\n' $<value> > shell.txt
  params: {value: {type: string, required: true}}
---
apiVersion: runner/v1
kind: App
metadata: {name: argv}
spec:
  command: [python3, -c, "import sys, json; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))", $<value>]
  params: {value: {type: string, required: true}}
---
apiVersion: runner/v1
kind: Job
metadata: {name: inject}
spec:
  cluster: here
  tasks:
    a: {app: echoer, params: {value: placeholder}}
    b: {app: argv, params: {value: placeholder}}
""",
    )
    r = run(["apply", str(m), "--set", f"a.value={evil}", "--set", f"b.value={evil}"])
    assert r.code == 0, r.out + r.err
    assert (workdir / "shell.txt").read_text() == evil + "\n"
    assert json.loads((workdir / "argv.json").read_text()) == [evil]
    assert not list(workdir.glob("pwned*"))
    assert not list(workdir.glob("uid=*"))


def test_retries_keep_every_attempts_logs(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
flaky:
  command: n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "try $n"; echo "oops $n" >&2; [ $n -ge 3 ]
  retries: 3
  retryBackoff: 0.1s
"""),
    )
    r = run(["apply", str(m)])
    assert r.code == 0, r.out + r.err
    assert "retrying" in r.out
    s = status_json(workdir)
    assert s["instances"][0]["attempts"] == 3
    d = str(workdir / ".runner")
    for attempt in (1, 2, 3):
        out = cli("logs", "1", "flaky/0", "--attempt", str(attempt), "--state-dir", d)
        assert f"try {attempt}" in out.out and f"oops {attempt}" in out.out
    last = cli("logs", "1", "flaky", "--stream", "err", "--state-dir", d)
    assert last.out == "oops 3\n"


def test_retry_on_only_listed_exit_codes(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
exits4:
  command: echo x >> tries; exit 4
  retries: 3
  retryBackoff: 0.05s
  retryOn: [3]
"""),
    )
    r = run(["apply", str(m)])
    assert r.code == 1
    assert (workdir / "tries").read_text().count("x") == 1
    assert "exit code 4" in r.out


def test_timeout_kills_the_whole_process_group(workdir: Path) -> None:
    marker = f"77{uuid.uuid4().int % 10**6}.5"
    m = write(
        workdir / "m.yaml",
        job(f"""
slow:
  command: sleep {marker} & sleep {marker}
  timeout: 1s
"""),
    )
    t0 = time.monotonic()
    r = run(["apply", str(m)])
    assert r.code == 1
    assert time.monotonic() - t0 < 15
    assert "timed out after 1.0s" in r.out
    s = status_json(workdir)
    assert s["instances"][0]["state"] == "timeout"
    time.sleep(0.3)
    assert not marker_alive(marker)


def test_failure_blocks_dependents_but_not_unrelated_work(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
bad: {command: exit 3}
after-bad: {command: touch after-bad, dependsOn: [bad]}
later: {command: touch later, dependsOn: [after-bad]}
good: {command: sleep 0.3; touch good}
"""),
    )
    r = run(["apply", str(m)])
    assert r.code == 1
    assert (workdir / "good").exists()
    assert not (workdir / "after-bad").exists()
    states = {i["task"]: i["state"] for i in status_json(workdir)["instances"]}
    assert states == {
        "bad": "failed",
        "after-bad": "upstream_failed",
        "later": "upstream_failed",
        "good": "succeeded",
    }
    # fix it: only the failed task and what depends on it run
    m.write_text(m.read_text().replace("exit 3", "exit 0"))
    p = cli("plan", str(m))
    assert "skip [0]: up to date" in p.out
    r2 = run(["apply", str(m)])
    assert r2.code == 0
    ran = {i["task"]: i["state"] for i in status_json(workdir)["instances"]}
    assert ran == {
        "bad": "succeeded",
        "after-bad": "succeeded",
        "later": "succeeded",
        "good": "skipped",
    }


def test_fail_fast_stops_everything(workdir: Path) -> None:
    marker = f"88{uuid.uuid4().int % 10**6}.5"
    m = write(
        workdir / "m.yaml",
        job(f"""
bad: {{command: sleep 0.2; exit 1}}
slow: {{command: sleep {marker}}}
never: {{command: touch never, dependsOn: [slow]}}
"""),
    )
    r = run(["apply", str(m), "--fail-fast"])
    assert r.code == 1, r.out
    assert not (workdir / "never").exists()
    time.sleep(0.2)
    assert not marker_alive(marker)
    states = {i["task"]: i["state"] for i in status_json(workdir)["instances"]}
    assert states["slow"] == "cancelled" and states["never"] == "cancelled"


@pytest.mark.parametrize("how", ["cancel-command", "sigint", "sighup"])
def test_cancel_leaves_no_orphans(workdir: Path, how: str) -> None:
    marker = f"99{uuid.uuid4().int % 10**6}.5"
    m = write(
        workdir / "m.yaml",
        job(f"""
slow:
  instances: 3
  command: sh -c 'sleep {marker}' & sleep {marker}
after: {{command: touch after, dependsOn: [slow]}}
"""),
    )
    p = start_apply(m)
    wait_for(lambda: marker_alive(marker))
    time.sleep(0.3)
    if how == "sigint":
        p.send_signal(signal.SIGINT)
    elif how == "sighup":  # the terminal closed
        p.send_signal(signal.SIGHUP)
    else:
        c = cli("cancel", "1", "--state-dir", str(workdir / ".runner"))
        assert c.code == 0 and "cancel" in c.out, c.out + c.err
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, out + err
    time.sleep(0.3)
    assert not marker_alive(marker)
    s = status_json(workdir)
    assert s["run"]["state"] == "cancelled"
    why = {"cancel-command": "`runner cancel`", "sigint": "SIGINT", "sighup": "SIGHUP"}[how]
    assert all(i["reason"].endswith(f"cancelled by {why}") for i in s["instances"])
    states = sorted(i["state"] for i in s["instances"])
    assert states == ["cancelled"] * 4
    # cancelled work reruns next time
    p2 = cli("plan", str(m))
    assert "cancelled in run 1" in p2.out


def test_second_apply_refuses_and_kill_9_then_reapply_finishes(workdir: Path) -> None:
    marker = f"66{uuid.uuid4().int % 10**6}.5"
    m = write(
        workdir / "m.yaml",
        job(f"""
quick:
  instances: 3
  command: echo ran >> quick-$<instance_id>.log
slow:
  dependsOn: [quick]
  command: if [ -f go ]; then touch slow-done; else sleep {marker}; fi
"""),
    )
    p = start_apply(m)
    wait_for(lambda: marker_alive(marker))
    second = run(["apply", str(m)])
    assert second.code == 2
    assert "already being applied by another runner" in second.err
    assert "Traceback" not in second.err
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    assert marker_alive(marker)  # the runner died; its child did not (yet)
    shown = status_json(workdir)["run"]
    assert shown["state"] == "interrupted" and "is gone" in shown["reason"]
    (workdir / "go").touch()
    r = run(["apply", str(m)])
    assert r.code == 0, r.out + r.err
    assert "was interrupted" in r.out
    assert (workdir / "slow-done").exists()
    for i in range(3):  # no succeeded instance ran twice
        assert (workdir / f"quick-{i}.log").read_text() == "ran\n"
    time.sleep(0.2)
    assert not marker_alive(marker)  # the leftover process group was killed
    runs = json.loads(cli("runs", "--state-dir", str(workdir / ".runner"), "-o", "json").out)
    assert [r["state"] for r in runs] == ["succeeded", "interrupted"]


def test_slots_bound_concurrency(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
w:
  instances: 6
  command: echo start $(date +%s.%N) >> $<instance_id>.t; sleep 0.3; echo end $(date +%s.%N) >> $<instance_id>.t
"""),
    )
    assert run(["apply", str(m)]).code == 0
    spans = []
    for i in range(6):
        lines = (workdir / f"{i}.t").read_text().split()
        spans.append((float(lines[1]), float(lines[3])))
    peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert peak == 2


def test_edit_reruns_only_what_changed(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
a: {command: echo a >> a.log}
b: {command: echo b >> b.log}
c: {command: echo c >> c.log, dependsOn: [b]}
"""),
    )
    assert run(["apply", str(m)]).code == 0
    m.write_text(m.read_text().replace("echo b >>", "echo B >>"))
    p = cli("plan", str(m), "--detailed-exitcode")
    assert p.code == 2
    assert "changed since run 1: command" in p.out
    assert "upstream task 'b' runs" in p.out
    assert run(["apply", str(m)]).code == 0
    assert (workdir / "a.log").read_text() == "a\n"
    assert (workdir / "b.log").read_text() == "b\nB\n"
    assert (workdir / "c.log").read_text() == "c\nc\n"


def test_git_commit_and_digest_recorded(workdir: Path) -> None:
    m = write(workdir / "m.yaml", job("a: {command: 'true'}"))
    subprocess.run(["git", "init", "-q", str(workdir)], check=True)
    subprocess.run(["git", "-C", str(workdir), "add", "m.yaml"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(workdir),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "m",
        ],
        check=True,
    )
    head = subprocess.run(
        ["git", "-C", str(workdir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert run(["apply", str(m)]).code == 0
    runs = json.loads(cli("runs", "--state-dir", str(workdir / ".runner"), "-o", "json").out)
    assert runs[0]["git_commit"] == head  # outputs and .runner/ are untracked: not "dirty"
    m.write_text(m.read_text() + "\n")
    assert run(["apply", str(m), "--force"]).code == 0
    runs = json.loads(cli("runs", "--state-dir", str(workdir / ".runner"), "-o", "json").out)
    assert runs[0]["git_commit"] == head + "+dirty"


def test_logs_follow_streams_until_the_attempt_ends(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("talk: {command: 'for i in 1 2 3; do echo line $i; sleep 0.3; done'}"),
    )
    p = start_apply(m)
    d = workdir / ".runner"
    wait_for(
        lambda: (
            (d / "state.db").exists()
            and bool(cli("runs", "--state-dir", str(d), "-o", "json").out.strip("[]\n "))
        )
    )
    wait_for(lambda: cli("logs", "1", "talk/0", "--state-dir", str(d)).code == 0)
    f = run(["logs", "1", "talk/0", "--follow", "--stream", "out", "--state-dir", str(d)])
    assert f.out == "line 1\nline 2\nline 3\n"
    assert p.wait(timeout=20) == 0


def test_plugins_are_found_through_entry_points() -> None:
    r = cli("plugins", "-o", "json")
    found = {(p["group"], p["name"]): p["distribution"] for p in json.loads(r.out)}
    assert found[("executor", "local")] == "runner-local"
    assert found[("kind", "shell")] == "runner-shell"


def test_help_is_light_and_module_entry_point_works() -> None:
    code = (
        "import sys, runner.cli; assert 'networkx' not in sys.modules; "
        "assert 'rich.progress' not in sys.modules; print('light')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "light", out.stderr
    h = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "apply" in h.stdout


def test_user_errors_exit_2_without_traceback(workdir: Path) -> None:
    m = write(workdir / "m.yaml", job("a: {command: 'true', dependsOn: [nope]}"))
    r = run(["apply", str(m)])
    assert r.code == 2
    assert "depends on unknown task 'nope'" in r.err
    assert "Traceback" not in r.err + r.out
    assert not (workdir / ".runner").exists() or not os.listdir(workdir / ".runner" / "logs")


def test_second_ctrl_c_stops_without_the_grace_period(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
stubborn:
  command: trap '' TERM; touch ready; while true; do sleep 0.1; done
"""),
    )
    p = start_apply(m)
    wait_for(lambda: (workdir / "ready").exists())
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert p.poll() is None  # SIGTERM is ignored by the task: the runner waits for the grace
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, out + err
    assert time.monotonic() - t0 < 2.5  # the grace period (3 s) was cut short
    assert "stopping now" in out


def test_a_program_that_cannot_start_fails_like_a_shell_says(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
missing: {command: [no-such-program-xyz, arg]}
"""),
    )
    r = run(["apply", str(m)])
    assert r.code == 1
    assert "exit code 127" in r.out
    log = cli("logs", "1", "missing/0", "--stream", "err", "--state-dir", str(workdir / ".runner"))
    assert "cannot start 'no-such-program-xyz': No such file or directory" in log.out


def test_apply_json_output_is_one_object_per_line(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
a: {command: 'true', instances: 2}
b: {command: exit 5, dependsOn: [a]}
"""),
    )
    r = run(["apply", str(m), "-o", "json"])
    assert r.code == 1
    events = [json.loads(line) for line in r.out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[1] == "run-started" and kinds[-1] == "done"
    assert events[0]["jobs"][0]["tasks"][0]["instances"][1]["reason"] == "new: never ran"
    failed = [e for e in events if e["event"] == "failed"]
    assert failed == [{**failed[0], "task": "b", "exit_code": 5}]
    assert events[-1]["states"] == {"j": "failed"}
    again = run(["apply", str(m), "-o", "json"])
    plan = json.loads(again.out.splitlines()[0])
    actions = {t["task"]: t["action"] for t in plan["jobs"][0]["tasks"]}
    assert actions == {"a": "skip", "b": "run"}
    assert plan["jobs"][0]["tasks"][1]["instances"][0]["reason"] == "failed in run 1"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("printf '%s\\n' $<value> > out.txt", "{v}\n"),
        ('printf "%s\\n" "frame $<value>" > out.txt', "frame {v}\n"),
        ("printf '%s\\n' 'frame $<value>' > out.txt", "frame {v}\n"),
        ('printf "%s\\n" "$(printf %s "$<value>")" > out.txt', "{v}\n"),
        ('printf "%s\\n" "a"$<value>"b" > out.txt', "a{v}b\n"),
    ],
)
def test_values_stay_literal_in_every_quoting_context(
    workdir: Path, command: str, expected: str
) -> None:
    evil = "x; touch pwned $(touch pwned2) `touch pwned3` '\" \\ $HOME"
    m = write(
        workdir / "m.yaml",
        job(f"""
t:
  command: {json.dumps(command)}
  params: {{value: placeholder}}
"""),
    )
    r = run(["apply", str(m), "--set", f"t.value={evil}"])
    assert r.code == 0, r.out + r.err
    assert (workdir / "out.txt").read_text() == expected.format(v=evil)
    assert not list(workdir.glob("pwned*"))


def test_placeholders_where_no_quoting_is_safe_are_refused(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
a: {command: 'echo `echo $<v>`', params: {v: x}}
"""),
    )
    r = cli("validate", str(m))
    assert r.code == 2
    assert "placeholder inside `...` cannot be quoted safely" in r.err
    assert "m.yaml:12:30:" in r.err  # at the placeholder itself


def test_detailed_exitcode_reports_errors_as_1(workdir: Path) -> None:
    bad = write(workdir / "bad.yaml", job("a: {command: 'true', dependsOn: [nope]}"))
    assert cli("plan", str(bad), "--detailed-exitcode").code == 1
    assert cli("plan", str(workdir / "missing.yaml"), "--detailed-exitcode").code == 1
    assert cli("plan", str(bad)).code == 2


def test_a_due_retry_does_not_queue_behind_new_work(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
bad: {command: 'exit 3', retries: 1, retryBackoff: 0.1s}
longrun: {instances: 6, command: 'sleep 1.5'}
"""),
    )
    r = run(["apply", str(m), "-o", "json"])
    assert r.code == 1
    starts = [
        (e["task"], e["instance"], e["attempt"])
        for e in map(json.loads, r.out.splitlines())
        if e["event"] == "started"
    ]
    # the retry starts in the first free slot, not after all six long instances (they are
    # long enough for the engine to see the retry due even on a loaded machine)
    assert starts.index(("bad", 0, 2)) < starts.index(("longrun", 5, 1))


def test_a_task_left_out_while_its_upstream_changed_is_stale(workdir: Path) -> None:
    full = job("""
render: {command: echo $<q> > frame.txt, params: {q: low}}
encode: {dependsOn: [render], command: cp frame.txt movie.txt}
""")
    m = write(workdir / "m.yaml", full)
    assert run(["apply", str(m)]).code == 0
    # tune the render without the expensive encode
    m.write_text(job("render: {command: echo $<q> > frame.txt, params: {q: high}}"))
    assert run(["apply", str(m)]).code == 0
    m.write_text(full.replace("q: low", "q: high"))
    p = cli("plan", str(m))
    assert "skip [0]: up to date (succeeded in run 2)" in p.out  # render
    assert "run  [0]: changed since run 1: upstream render" in p.out  # encode
    assert run(["apply", str(m)]).code == 0
    assert (workdir / "movie.txt").read_text() == "high\n"
    assert "Nothing to do" in run(["apply", str(m)]).out


def test_live_display_on_a_terminal_says_why_things_fail(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
hard: {command: 'exit 4', retries: 1, retryBackoff: 0.1s}
slow: {command: 'sleep 5', timeout: 0.5s}
"""),
    )
    cmd = f"{sys.executable} -m runner apply {m}"
    p = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
    )
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", p.stdout)
    assert p.returncode == 1
    assert "━" in screen  # the progress bars were drawn: this was the terminal display
    assert "j/hard[0] retrying: exit code 4; retry in 0.1s" in screen
    assert "j/hard[0] failed: exit code 4" in screen
    assert "j/slow[0] timeout: timed out after 0.5s" in screen


def test_logs_follow_waits_for_the_start_and_goes_through_retries(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
first: {command: sleep 1}
r:
  dependsOn: [first]
  command: 'echo "attempt $RUNNER_ATTEMPT"; sleep 0.2; [ $RUNNER_ATTEMPT -ge 2 ]'
  retries: 1
  retryBackoff: 0.1s
"""),
    )
    p = start_apply(m)
    d = workdir / ".runner"
    wait_for(lambda: (d / "state.db").exists() and cli("status", "--state-dir", str(d)).code == 0)
    f = run(["logs", "1", "r/0", "--follow", "--stream", "out", "--state-dir", str(d)])
    assert f.code == 0, f.err
    assert f.out == "attempt 1\nattempt 2\n"
    assert p.wait(timeout=20) == 0


def test_a_workdir_per_instance(workdir: Path) -> None:
    m = write(
        workdir / "m.yaml",
        job("""
t: {command: pwd > here.txt, instances: 2, workdir: "scratch/$<who>-$<instance_id>", params: {who: w}}
"""),
    )
    assert run(["apply", str(m)]).code == 0
    for i in range(2):
        d = workdir / "scratch" / f"w-{i}"
        assert (d / "here.txt").read_text().strip() == str(d)
    bad = write(workdir / "bad.yaml", job("t: {command: pwd, workdir: 'w-$<nope>'}"))
    r = cli("validate", str(bad))
    assert r.code == 2 and "placeholder '$<nope>' is not declared" in r.err


def test_a_long_chain_of_up_to_date_tasks_before_a_changed_one(workdir: Path) -> None:
    n = 1500
    lines = ["t0: {command: [true]}"] + [
        f"t{i}: {{command: [true], dependsOn: [t{i - 1}]}}" for i in range(1, n)
    ]
    m = write(workdir / "m.yaml", job("\n".join(lines)))
    assert run(["apply", str(m)], timeout=300).code == 0
    m.write_text(
        m.read_text().replace(f"t{n - 1}: {{command: [true]", f"t{n - 1}: {{command: [echo]")
    )
    r = run(["apply", str(m)], timeout=300)
    assert r.code == 0, r.err[-2000:]
    assert "1 x changed since run 1: command" in r.out


def test_waiting_for_a_slot_is_not_running(workdir: Path) -> None:
    """The local executor takes attempts ahead of its slots; one that waits for a slot is
    shown as queued, not running, and its timeout counts only from when it really starts."""
    marker = f"55{uuid.uuid4().int % 10**6}"
    m = write(
        workdir / "m.yaml",
        CLUSTER.replace("slots: 2", "slots: 1")
        + "apiVersion: runner/v1\nkind: Job\nmetadata: {name: j}\n"
        + "spec:\n  cluster: here\n  tasks:\n"
        + "    w:\n      instances: 3\n      timeout: 2.5s\n"
        # 1.5000<marker><index> seconds: about 1.5 s, and findable with pgrep
        + f"      command: sleep 1.5000{marker}$<instance_id>\n",
    )
    p = start_apply(m)
    wait_for(lambda: marker_alive(f"1.5000{marker}0"))
    time.sleep(0.3)
    shown = status_json(workdir)
    states = sorted(i["state"] for i in shown["instances"])
    assert states == ["pending", "queued", "running"], states
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, out + err
    # three 1.5 s attempts one after another: had the queued ones' clocks started when
    # they were handed over, those would have passed their 2.5 s timeout
    shown = status_json(workdir)
    assert sorted(i["state"] for i in shown["instances"]) == ["succeeded"] * 3
    assert "timed out" not in out


def test_job_option_applies_only_the_named_job(workdir: Path) -> None:
    """`--job NAME` plans and runs one job of a folder holding several; a name that is not
    there is a user error that says which names are."""
    for name in ("one", "two"):
        write(
            workdir / f"{name}.yaml",
            f"""
            apiVersion: runner/v1
            kind: Job
            metadata: {{name: {name}}}
            spec:
              tasks:
                t: {{command: echo {name} > {name}.txt}}
            """,
        )
    planned = cli("plan", str(workdir), "--job", "two")
    assert planned.code == 0, planned.err
    assert "job two (" in planned.out and "job one" not in planned.out
    applied = run(["apply", str(workdir), "--job", "two"], cwd=workdir)
    assert applied.code == 0, applied.err
    assert (workdir / "two.txt").exists() and not (workdir / "one.txt").exists()
    wrong = cli("apply", str(workdir), "--job", "tow")
    assert wrong.code == 2
    assert "no job 'tow'" in wrong.err and "did you mean 'two'?" in wrong.err
    assert "Traceback" not in wrong.err
