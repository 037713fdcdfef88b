"""Reconciling: what `plan` says runs or skips (and why) after real engine runs recorded in state.

The engine runs with a FAKE executor (nothing is started), but the plan, the engine's records and
the state store are the real ones, so these tests follow what a user sees when applying the same
manifest again, after an edit, after a failure, or with `--force` / `--rerun`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.manifest.loader import load
from runner.plan import JobPlan, make_plan
from tests.conftest import write
from tests.fake_executor import Backend, Harness

APP = """
apiVersion: runner/v1
kind: App
metadata: {name: greet}
spec:
  command: echo $<greeting> $<who> > $<out>/g-$<instance_id>.txt
  params:
    greeting: {type: string, default: hello}
    who: {type: string, default: world}
  outputs:
    out: {description: where greetings go}
---
apiVersion: runner/v1
kind: Cluster
metadata: {name: c}
spec: {executor: local, slots: 4}
"""

JOB = """
apiVersion: runner/v1
kind: Job
metadata: {name: j}
spec:
  cluster: c
  tasks:
    prepare:
      command: cat $<data>
      inputs: {data: data/in.txt}
    greet:
      app: greet
      instances: 2
      params: {who: sea}
      dependsOn: [prepare]
      outputs: {out: out/greet}
    report:
      command: cat $<g>/*
      dependsOn: [greet]
      inputs: {g: out/greet}
    side:
      command: echo side
"""


def setup(tmp_path: Path, job: str = JOB) -> Harness:
    write(tmp_path / "data" / "in.txt", "some words\n")
    write(tmp_path / "m.yaml", APP + "---" + job)
    return Harness([tmp_path / "m.yaml"], tmp_path / ".runner")


def edit(tmp_path: Path, old: str, new: str) -> None:
    m = tmp_path / "m.yaml"
    text = m.read_text()
    assert old in text, old
    m.write_text(text.replace(old, new, 1))


def decisions(plans: list[JobPlan]) -> dict[str, list[tuple[str, str]]]:
    """task -> [(action, reason) per instance]."""
    [jp] = plans
    return {n: [(i.action, i.reason) for i in tp.instances] for n, tp in jp.tasks.items()}


def actions(plans: list[JobPlan]) -> dict[str, str]:
    [jp] = plans
    return {n: "/".join(i.action for i in tp.instances) for n, tp in jp.tasks.items()}


def fingerprints(plans: list[JobPlan]) -> dict[str, list[str]]:
    [jp] = plans
    return {n: [i.fingerprint for i in tp.instances] for n, tp in jp.tasks.items()}


ALL_SKIP = {"prepare": "skip", "greet": "skip/skip", "report": "skip", "side": "skip"}


def test_without_state_everything_is_new(tmp_path: Path) -> None:
    h = setup(tmp_path)
    plans = make_plan(load(h.paths), None)
    assert {r for rs in decisions(plans).values() for r in rs} == {("run", "new: never ran")}


def test_after_a_successful_run_everything_is_up_to_date(tmp_path: Path) -> None:
    h = setup(tmp_path)
    assert decisions(h.plan())["greet"] == [("run", "new: never ran")] * 2
    assert h.apply().exit_code == 0
    plans = h.plan()
    assert actions(plans) == ALL_SKIP
    for _, reason in (r for rs in decisions(plans).values() for r in rs):
        assert reason.startswith("up to date") and f"run {h.run_ids['j']}" in reason
    [jp] = plans
    assert jp.to_run == 0 and jp.total == 5


def test_an_upstream_output_read_as_input_does_not_rerun_its_reader(tmp_path: Path) -> None:
    """`report` reads what `greet` writes: its inputs are fingerprinted when it starts, not
    when the plan was made (before `greet` had written anything)."""
    h = setup(tmp_path)

    def writes_output(spec: object) -> None:
        key = spec.key  # type: ignore[attr-defined]
        out = tmp_path / "out" / "greet"
        (out / f"g-{key.split('/')[2]}.txt").write_text("hello sea\n")

    b = Backend()
    b.script("j/greet/*", on_submit=writes_output)
    assert h.apply(backend=b).exit_code == 0
    assert actions(h.plan()) == ALL_SKIP


def test_editing_a_param_reruns_that_task_and_everything_downstream(tmp_path: Path) -> None:
    h = setup(tmp_path)
    h.apply()
    before = fingerprints(h.plan())
    edit(tmp_path, "params: {who: sea}", "params: {who: ocean}")
    plans = h.plan()
    after = fingerprints(plans)
    assert after["greet"] != before["greet"]
    for unchanged in ("prepare", "side"):
        assert after[unchanged] == before[unchanged], unchanged
    # report's own parts are the same; only what its upstream is made of changed
    assert after["report"] != before["report"]
    report = plans[0].tasks["report"].instances[0]
    old_parts = h.state().current("j")[("report", 0)].parts
    assert [k for k in report.parts if report.parts[k] != old_parts.get(k)] == ["upstream greet"]
    d = decisions(plans)
    assert d["prepare"] == [("skip", d["prepare"][0][1])] and d["side"][0][0] == "skip"
    for action, reason in d["greet"]:
        assert action == "run"
        assert reason.startswith("changed since run 1:")
        assert "param who" in reason and "command" in reason and "param greeting" not in reason
    assert d["report"] == [("run", "upstream task 'greet' runs")]

    b = Backend()
    assert h.apply(backend=b).exit_code == 0
    assert sorted(b.submitted) == ["j/greet/0/1", "j/greet/1/1", "j/report/0/1"]
    assert actions(h.plan()) == ALL_SKIP


def test_editing_a_command_reruns_that_task_and_downstream_only(tmp_path: Path) -> None:
    h = setup(tmp_path)
    h.apply()
    edit(tmp_path, "command: cat $<data>", "command: wc -w $<data>")
    d = decisions(h.plan())
    assert d["prepare"] == [("run", "changed since run 1: command")]
    assert d["greet"] == [("run", "upstream task 'prepare' runs")] * 2
    assert d["report"] == [("run", "upstream task 'greet' runs")]
    assert d["side"][0][0] == "skip"


def test_env_and_instance_count_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    h = setup(tmp_path)
    h.apply()
    edit(tmp_path, "command: echo side", "command: echo side\n      env: {MODE: fast}")
    d = decisions(h.plan())
    assert d["side"] == [("run", "changed since run 1: env")]
    edit(tmp_path, "instances: 2", "instances: 3")
    d = decisions(h.plan())
    assert [a for a, _ in d["greet"]] == ["run"] * 3
    assert d["greet"][2] == ("run", "new: never ran")
    assert "instances" in d["greet"][0][1]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("command: echo side", "command: echo side\n      retries: 4"),
        ("command: echo side", "command: echo side\n      retryBackoff: 1m\n      retryOn: [3]"),
        ("command: echo side", "command: echo side\n      timeout: 1h"),
        ("metadata: {name: c}\nspec: {executor: local, slots: 4}", "metadata: {name: c}\n"
         "spec: {executor: local, slots: 1}"),
        ("instances: 2\n", "instances: 2\n      description: says hello\n"),
    ],
    ids=["retries", "backoff-and-retry-on", "timeout", "slots", "description"],
)  # fmt: skip
def test_settings_that_do_not_change_results_rerun_nothing(
    tmp_path: Path, old: str, new: str
) -> None:
    h = setup(tmp_path)
    h.apply()
    edit(tmp_path, old, new)
    assert actions(h.plan()) == ALL_SKIP


def test_failed_instances_rerun_and_their_succeeded_siblings_do_not(tmp_path: Path) -> None:
    h = setup(tmp_path)
    b = Backend()
    b.script("j/greet/1/*", exit_code=1)
    assert h.apply(backend=b).exit_code == 1
    d = decisions(h.plan())
    assert d["prepare"][0][0] == "skip"
    assert d["greet"][0][0] == "skip"
    assert d["greet"][1] == ("run", "failed in run 1")
    assert d["report"] == [("run", "upstream failed in run 1")]
    assert d["side"][0][0] == "skip"

    b = Backend()
    assert h.apply(backend=b).exit_code == 0
    assert sorted(b.submitted) == ["j/greet/1/1", "j/report/0/1"]
    assert actions(h.plan()) == ALL_SKIP


def test_cancelled_instances_rerun(tmp_path: Path) -> None:
    h = setup(tmp_path)

    def cancel_now(_: object) -> None:
        assert h.engine is not None
        h.engine.cancel("cancelled by SIGINT")

    b = Backend()
    b.script("j/greet/*", hang=True)
    b.script("j/greet/1/1", hang=True, on_submit=cancel_now)
    assert h.apply(backend=b).exit_code == 130
    d = decisions(h.plan())
    assert d["prepare"][0][0] == "skip"
    assert d["greet"] == [("run", "cancelled in run 1")] * 2
    assert d["report"] == [("run", "cancelled in run 1")]
    assert d["side"][0][0] == "skip"  # it had succeeded before the cancel


def test_an_interrupted_run_reruns_only_what_did_not_succeed(tmp_path: Path) -> None:
    """The runner dies mid-run (like kill -9): the next apply closes the run as interrupted
    and reruns only the instances that had not succeeded."""
    h = setup(tmp_path)
    b = Backend()
    b.script("j/greet/1/*", hang=True)
    with pytest.raises(TimeoutError):
        h.apply(backend=b, limit=0.3)
    st = h.state()
    try:
        [run] = st.unfinished_runs("j")
        st.close_interrupted(run["id"], "j", "runner died")
    finally:
        st.close()
    d = decisions(h.plan())
    assert d["prepare"][0][0] == "skip" and d["side"][0][0] == "skip"
    assert d["greet"][0][0] == "skip"
    assert d["greet"][1] == ("run", f"interrupted in run {run['id']}")
    assert d["report"][0][0] == "run"


def test_force_runs_everything(tmp_path: Path) -> None:
    h = setup(tmp_path)
    h.apply()
    d = decisions(h.plan(force=True))
    assert {r for rs in d.values() for r in rs} == {("run", "forced (--force)")}
    b = Backend()
    h.apply(backend=b, force=True)
    assert len(b.submitted) == 5


@pytest.mark.parametrize("name", ["greet", "j/greet"])
def test_rerun_a_task_runs_it_and_its_dependents(tmp_path: Path, name: str) -> None:
    h = setup(tmp_path)
    h.apply()
    d = decisions(h.plan(rerun=[name]))
    assert d["greet"] == [("run", "requested (--rerun)")] * 2
    assert d["report"] == [("run", "upstream task 'greet' runs")]
    assert d["prepare"][0][0] == "skip" and d["side"][0][0] == "skip"


@pytest.mark.parametrize(
    ("name", "meant"), [("gret", "greet"), ("j/gret", "j/greet"), ("k/greet", "j/greet")]
)
def test_rerun_of_an_unknown_task_says_what_was_meant(
    tmp_path: Path, name: str, meant: str
) -> None:
    h = setup(tmp_path)
    with pytest.raises(UserError, match=f"--rerun '{name}': no such task.*{meant}"):
        h.plan(rerun=[name])


def test_changing_an_input_file_reruns_its_consumer(tmp_path: Path) -> None:
    h = setup(tmp_path)
    h.apply()
    data = tmp_path / "data" / "in.txt"
    data.write_text("other words, and more of them\n")
    d = decisions(h.plan())
    assert d["prepare"] == [("run", "changed since run 1: input data")]
    assert d["greet"] == [("run", "upstream task 'prepare' runs")] * 2
    assert d["side"][0][0] == "skip"

    h.apply()
    assert actions(h.plan()) == ALL_SKIP
    st = data.stat()
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched, same content
    assert decisions(h.plan())["prepare"] == [("run", "changed since run 2: input data")]


def test_a_file_inside_an_input_directory_counts(tmp_path: Path) -> None:
    h = setup(tmp_path)
    write(tmp_path / "out" / "greet" / "g-0.txt", "hi\n")
    h.apply()
    assert actions(h.plan()) == ALL_SKIP
    write(tmp_path / "out" / "greet" / "extra.txt", "new\n")
    d = decisions(h.plan())
    assert d["report"] == [("run", "changed since run 1: input g")]
    assert d["greet"][0][0] == "skip"


def test_plan_reads_state_but_never_writes_it(tmp_path: Path) -> None:
    h = setup(tmp_path)
    h.apply()
    db = tmp_path / ".runner" / "state.db"
    edit(tmp_path, "params: {who: sea}", "params: {who: ocean}")
    before = db.read_bytes()
    for _ in range(2):
        assert actions(h.plan())["greet"] == "run/run"
    assert db.read_bytes() == before


def test_retries_of_a_rerun_do_not_count_against_it(tmp_path: Path) -> None:
    """A task that failed after its retries is given all its retries again by the next apply."""
    h = setup(tmp_path, JOB.replace("command: echo side", "command: echo side\n      retries: 1"))
    b = Backend()
    b.script("j/side/*", exit_code=1)
    h.apply(backend=b)
    assert b.keys("side") == ["j/side/0/1", "j/side/0/2"]
    b = Backend()
    b.script("j/side/0/1", exit_code=1)
    assert h.apply(backend=b).exit_code == 0
    assert b.keys("side") == ["j/side/0/1", "j/side/0/2"]
