"""The scheduling engine against a FAKE executor: order, slots, retries, failures, cancel, timeouts.

Manifests are real (loaded and planned like `runner apply` does); only the executor is fake, so
every test asserts what a user would see: what ran, in which order, how often, and what the state
store says afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import yaml

from runner.state import State
from tests.fake_executor import Backend, Harness, Script


def manifest(
    tmp_path: Path,
    tasks: dict[str, dict[str, Any]],
    *,
    slots: int = 2,
    clusters: dict[str, int] | None = None,
    name: str = "j",
    file: str = "m.yaml",
) -> Path:
    """A cluster `c` (or several) and one job of `tasks`; returns the file."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "runner/v1",
            "kind": "Cluster",
            "metadata": {"name": cname},
            "spec": {"executor": "local", "slots": n},
        }
        for cname, n in (clusters or {"c": slots}).items()
    ]
    docs.append(
        {
            "apiVersion": "runner/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"cluster": next(iter(clusters or {"c": 0})), "tasks": tasks},
        }
    )
    path = tmp_path / file
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def write_job_only(path: Path, name: str, tasks: dict[str, dict[str, Any]]) -> Path:
    """A second job, in its own file, on the cluster `c` of `manifest`."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "runner/v1",
                "kind": "Job",
                "metadata": {"name": name},
                "spec": {"cluster": "c", "tasks": tasks},
            }
        )
    )
    return path


def harness(tmp_path: Path, tasks: dict[str, dict[str, Any]], **kw: Any) -> Harness:
    return Harness([manifest(tmp_path, tasks, **kw)], tmp_path / ".runner")


def instance_rows(h: Harness, task: str, job: str = "j") -> list[dict[str, Any]]:
    st = h.state()
    try:
        return st.instances(h.run_ids[job], task)
    finally:
        st.close()


def attempt_rows(h: Harness, task: str, idx: int = 0, job: str = "j") -> list[dict[str, Any]]:
    st = h.state()
    try:
        return st.attempts(h.run_ids[job], task, idx)
    finally:
        st.close()


def task_states(h: Harness, job: str = "j") -> dict[str, str]:
    st = h.state()
    try:
        return {t["task"]: t["state"] for t in st.tasks(h.run_ids[job])}
    finally:
        st.close()


# -- dependencies, fan-out, fan-in ------------------------------------------------------------


def test_dependents_start_only_after_every_instance_of_their_dependencies(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "split": {"command": "true", "instances": 3},
            "left": {"command": "true", "instances": 2, "dependsOn": ["split"]},
            "right": {"command": "true", "dependsOn": ["split"]},
            "join": {"command": "true", "dependsOn": ["left", "right"]},
        },
        slots=4,
    )
    b = Backend()
    # the last instance of `split` to finish is index 0, long after the others
    b.script("j/split/0/*", duration=0.05)
    b.script("j/split/[12]/*", duration=0.005)
    b.script("j/right/*", duration=0.04)
    out = h.apply(backend=b)

    assert out.exit_code == 0 and out.states == {"j": "succeeded"}
    split = b.keys("split")
    assert len(split) == 3
    for dependent in b.keys("left") + b.keys("right"):
        for dep in split:
            assert b.position("exit", dep) < b.position("submit", dependent)
    for dep in b.keys("left") + b.keys("right"):
        assert b.position("exit", dep) < b.position("submit", "j/join/0/1")
    # fan-out: both branches of the fan-out run at the same time
    assert b.position("submit", "j/right/0/1") < b.position("exit", "j/left/0/1")
    assert b.submitted[-1] == "j/join/0/1"
    assert [r["state"] for r in instance_rows(h, "left")] == ["succeeded", "succeeded"]


def test_a_dependent_starts_as_soon_as_its_own_dependencies_succeed(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "fast": {"command": "true"},
            "after-fast": {"command": "true", "dependsOn": ["fast"]},
            "slow": {"command": "true"},
        },
        slots=4,
    )
    b = Backend()
    b.script("j/slow/*", duration=0.25)
    h.apply(backend=b)
    # no waiting for a whole "level": `after-fast` runs while `slow` still does
    assert b.position("submit", "j/after-fast/0/1") < b.position("exit", "j/slow/0/1")


def test_concurrency_never_exceeds_slots_and_polls_stay_small(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {"many": {"command": "true", "instances": 25}, "other": {"command": "true"}},
        slots=3,
    )
    b = Backend(default=Script(duration=0.002))
    out = h.apply(backend=b)
    assert out.exit_code == 0
    assert len(b.submitted) == 26
    assert b.max_running == {"c": 3}  # the slots are used, and never exceeded
    assert b.polls and max(n for _, n in b.polls) <= 3
    assert b.closed == ["c"] and b.left_running_at_close == []


def test_each_cluster_has_its_own_slots(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "wide": {"command": "true", "instances": 8, "cluster": "big"},
            "narrow": {"command": "true", "instances": 5, "cluster": "small"},
        },
        clusters={"big": 4, "small": 1},
    )
    b = Backend(default=Script(duration=0.003))
    out = h.apply(backend=b)
    assert out.exit_code == 0
    assert b.max_running == {"big": 4, "small": 1}
    assert {b.cluster_of[k] for k in b.keys("narrow")} == {"small"}
    assert max(n for c, n in b.polls if c == "small") <= 1


def test_instances_see_their_index_and_count_under_both_names(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {"t": {"command": "echo $RUNNER_INSTANCE_ID", "instances": 3, "env": {"GREETING": "hi"}}},
    )
    b = Backend()
    h.apply(backend=b)
    assert sorted(b.keys("t")) == ["j/t/0/1", "j/t/1/1", "j/t/2/1"]
    for i in range(3):
        env = b.specs[f"j/t/{i}/1"].env
        assert env["RUNNER_INSTANCE_ID"] == str(i)
        assert env["BATCH_COMPUTE_DAG_INSTANCE_ID"] == str(i)
        assert env["RUNNER_INSTANCE_COUNT"] == "3"
        assert env["BATCH_COMPUTE_DAG_INSTANCE_COUNT"] == "3"
        assert env["RUNNER_ATTEMPT"] == "1"
        assert env["GREETING"] == "hi"
        assert env["RUNNER_RUN_ID"] == str(h.run_ids["j"])
    # logs at deterministic per-attempt paths
    spec = b.specs["j/t/2/1"]
    assert spec.stdout == tmp_path / ".runner" / "logs" / str(h.run_ids["j"]) / "t" / "2.1.out"
    assert spec.stderr.name == "2.1.err"


# -- retries -----------------------------------------------------------------------------------


def test_a_failing_attempt_is_retried_with_growing_backoff(tmp_path: Path) -> None:
    backoff = 0.02
    h = harness(
        tmp_path,
        {"flaky": {"command": "true", "retries": 3, "retryBackoff": "20ms"}},
    )
    b = Backend()
    b.script("j/flaky/0/[123]", exit_code=1)
    b.script("j/flaky/0/4", exit_code=0)
    out = h.apply(backend=b)

    assert out.exit_code == 0
    assert b.keys("flaky") == [f"j/flaky/0/{n}" for n in (1, 2, 3, 4)]
    assert [b.specs[k].env["RUNNER_ATTEMPT"] for k in b.keys("flaky")] == ["1", "2", "3", "4"]
    t = [b.submit_times[k] for k in b.keys("flaky")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(t)]
    # each wait at least doubles: 20 ms, 40 ms, 80 ms
    for n, gap in enumerate(gaps):
        assert gap >= backoff * 2**n * 0.95, gaps
    rows = attempt_rows(h, "flaky")
    assert [(r["attempt"], r["state"], r["exit_code"]) for r in rows] == [
        (1, "failed", 1),
        (2, "failed", 1),
        (3, "failed", 1),
        (4, "succeeded", 0),
    ]
    [inst] = instance_rows(h, "flaky")
    assert inst["state"] == "succeeded" and inst["attempts"] == 4
    assert len(h.reporter.of("retrying")) == 3


def test_retries_are_bounded_and_the_last_failure_is_recorded(tmp_path: Path) -> None:
    h = harness(tmp_path, {"broken": {"command": "false", "retries": 2, "retryBackoff": "1ms"}})
    b = Backend(default=Script(exit_code=7))
    out = h.apply(backend=b)
    assert b.keys("broken") == ["j/broken/0/1", "j/broken/0/2", "j/broken/0/3"]
    assert out.exit_code == 1 and out.states == {"j": "failed"}
    [inst] = instance_rows(h, "broken")
    assert (inst["state"], inst["exit_code"], inst["attempts"]) == ("failed", 7, 3)
    assert "exit code 7" in inst["reason"]
    assert [r["state"] for r in attempt_rows(h, "broken")] == ["failed"] * 3
    assert task_states(h)["broken"] == "failed"


def test_retry_on_retries_only_the_listed_exit_codes(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "t": {
                "command": "true",
                "instances": 2,
                "retries": 3,
                "retryOn": [3],
                "retryBackoff": "1ms",
            }
        },
    )
    b = Backend()
    b.script("j/t/0/1", exit_code=3)  # listed: retried, then succeeds
    b.script("j/t/1/*", exit_code=1)  # not listed: fails at once
    out = h.apply(backend=b)
    assert sorted(b.keys("t")) == ["j/t/0/1", "j/t/0/2", "j/t/1/1"]
    rows = {r["idx"]: r for r in instance_rows(h, "t")}
    assert rows[0]["state"] == "succeeded" and rows[0]["attempts"] == 2
    assert rows[1]["state"] == "failed" and rows[1]["attempts"] == 1
    assert out.exit_code == 1


def test_a_lost_attempt_is_retried(tmp_path: Path) -> None:
    h = harness(tmp_path, {"t": {"command": "true", "retries": 1, "retryBackoff": "1ms"}})
    b = Backend()
    b.script("j/t/0/1", lost=True)
    out = h.apply(backend=b)
    assert out.exit_code == 0
    assert [r["state"] for r in attempt_rows(h, "t")] == ["lost", "succeeded"]


def test_an_attempt_the_executor_refuses_fails_and_is_retried(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "t": {"command": "true", "retries": 1, "retryBackoff": "1ms"},
            "u": {"command": "true"},
            "v": {"command": "true"},
        },
    )
    b = Backend()
    b.script("j/t/0/1", submit_error="qsub: unknown queue")
    b.script("j/u/0/*", submit_error="qsub: unknown queue")
    out = h.apply(backend=b)  # no traceback: one refused attempt does not stop the run
    assert out.states == {"j": "failed"} and out.exit_code == 1
    assert ("refused", "j/t/0/1") in b.log and b.keys("t") == ["j/t/0/2"]
    assert b.keys("v") == ["j/v/0/1"]
    assert [r["state"] for r in attempt_rows(h, "t")] == ["failed", "succeeded"]
    [u] = instance_rows(h, "u")
    assert u["state"] == "failed" and "qsub: unknown queue" in u["reason"]


# -- failures ----------------------------------------------------------------------------------


def test_a_failed_task_blocks_its_dependents_while_unrelated_work_goes_on(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "bad": {"command": "false", "instances": 2},
            "child": {"command": "true", "dependsOn": ["bad"], "instances": 2},
            "grandchild": {"command": "true", "dependsOn": ["child"]},
            "good": {"command": "true"},
            "after-good": {"command": "true", "dependsOn": ["good"]},
        },
        slots=4,
    )
    b = Backend()
    b.script("j/bad/0/*", exit_code=1)
    b.script("j/bad/1/*", duration=0.03)  # the failure does not stop its sibling
    b.script("j/good/*", duration=0.05)  # still running when `bad` fails
    out = h.apply(backend=b)

    assert out.exit_code == 1 and out.states == {"j": "failed"}
    assert b.keys("child") == [] and b.keys("grandchild") == []
    assert b.keys("after-good") == ["j/after-good/0/1"]
    assert b.position("exit", "j/bad/0/1") < b.position("submit", "j/after-good/0/1")
    assert b.cancelled == []
    assert b.exit_codes["j/bad/1/1"] == 0
    for task in ("child", "grandchild"):
        rows = instance_rows(h, task)
        assert {r["state"] for r in rows} == {"upstream_failed"}
        assert all("'bad'" in r["reason"] for r in rows)
    assert task_states(h) == {
        "bad": "failed",
        "child": "upstream_failed",
        "grandchild": "upstream_failed",
        "good": "succeeded",
        "after-good": "succeeded",
    }
    assert [r["state"] for r in instance_rows(h, "bad")] == ["failed", "succeeded"]
    assert out.counts == {"failed": 1, "succeeded": 3, "upstream_failed": 3}


def test_fail_fast_cancels_running_work_and_starts_nothing_new(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "bad": {"command": "false"},
            "long": {"command": "sleep 100"},
            "queued": {"command": "true", "instances": 3},
            "child": {"command": "true", "dependsOn": ["long"]},
        },
        slots=2,
    )
    b = Backend()
    b.script("j/bad/*", exit_code=1, duration=0.02)
    b.script("j/long/*", hang=True)
    out = h.apply(backend=b, fail_fast=True)

    assert out.exit_code == 1 and out.states == {"j": "failed"}
    assert sorted(b.submitted) == ["j/bad/0/1", "j/long/0/1"]
    assert b.cancelled == ["j/long/0/1"]
    assert b.left_running_at_close == []
    assert [r["state"] for r in instance_rows(h, "long")] == ["cancelled"]
    assert [r["state"] for r in instance_rows(h, "queued")] == ["cancelled"] * 3
    assert [r["state"] for r in instance_rows(h, "child")] == ["cancelled"]
    assert task_states(h)["bad"] == "failed"
    assert "fail-fast" in (h.reporter.of("cancelling")[0].message or "")


def test_fail_fast_across_jobs_exits_1_not_as_if_interrupted(tmp_path: Path) -> None:
    """--fail-fast cancels the other jobs of the apply too; the exit code still says "a task
    failed" (1), not "cancelled by Ctrl-C" (130)."""
    m1 = manifest(tmp_path, {"bad": {"command": "false"}}, name="one", file="one.yaml")
    m2 = write_job_only(tmp_path / "two.yaml", "two", {"long": {"command": "sleep 100"}})
    h = Harness([m1, m2], tmp_path / ".runner")
    b = Backend()
    b.script("one/bad/*", exit_code=1, duration=0.02)
    b.script("two/long/*", hang=True)
    out = h.apply(backend=b, fail_fast=True)
    assert out.states == {"one": "failed", "two": "cancelled"}
    assert b.cancelled == ["two/long/0/1"]
    assert out.exit_code == 1


def test_fail_fast_keeps_a_success_seen_in_the_same_poll_as_the_failure(tmp_path: Path) -> None:
    """An attempt that had already exited 0 when the failure was seen succeeded: it is not
    recorded as cancelled (and so not rerun by the next apply)."""
    h = harness(tmp_path, {"t": {"command": "true", "instances": 2}}, slots=2)
    b = Backend()
    b.script("j/t/0/*", exit_code=1, duration=0.02)
    b.script("j/t/1/*", hang=True, ends_with="j/t/0/1")  # exits 0 in the same instant
    out = h.apply(backend=b, fail_fast=True)
    assert out.exit_code == 1
    assert [r["state"] for r in instance_rows(h, "t")] == ["failed", "succeeded"]
    assert b.cancelled == []


# -- cancellation ------------------------------------------------------------------------------


def cancel_soon(h: Harness, delay: float = 0.02) -> Script:
    """A hanging attempt whose submit schedules `engine.cancel()` (like Ctrl-C)."""

    def hook(_: object) -> None:
        engine = h.engine
        assert engine is not None
        asyncio.get_running_loop().call_later(delay, engine.cancel, "cancelled by SIGINT")

    return Script(hang=True, on_submit=hook)


def test_cancel_stops_running_instances_and_records_pending_ones(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "work": {"command": "sleep 100", "instances": 4},
            "after": {"command": "true", "dependsOn": ["work"], "instances": 2},
        },
        slots=2,
    )
    b = Backend(default=Script(hang=True))
    b.script("j/work/0/1", **vars(cancel_soon(h)))
    out = h.apply(backend=b)

    assert out.exit_code == 130 and out.states == {"j": "cancelled"}
    assert sorted(b.submitted) == ["j/work/0/1", "j/work/1/1"]
    assert sorted(b.cancelled) == ["j/work/0/1", "j/work/1/1"]
    assert b.left_running_at_close == []
    work = instance_rows(h, "work")
    assert [r["state"] for r in work] == ["cancelled"] * 4
    assert "not started" in work[3]["reason"]
    assert [r["state"] for r in instance_rows(h, "after")] == ["cancelled"] * 2
    assert task_states(h) == {"work": "cancelled", "after": "cancelled"}
    assert [r["state"] for r in attempt_rows(h, "work", 0)] == ["cancelled"]
    assert out.counts == {"cancelled": 6}


def test_cancel_does_not_wait_for_a_retry_backoff(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "flaky": {"command": "false", "retries": 5, "retryBackoff": "1h"},
            "other": {"command": "sleep 1"},
        },
        slots=2,
    )
    b = Backend()
    b.script("j/flaky/*", exit_code=1)
    b.script("j/other/*", **vars(cancel_soon(h, delay=0.05)))
    out = h.apply(backend=b)  # an hour of backoff would hang the test
    assert out.exit_code == 130
    assert b.keys("flaky") == ["j/flaky/0/1"]
    [inst] = instance_rows(h, "flaky")
    assert inst["state"] == "cancelled"


def test_cancel_during_a_slow_submit_stops_that_attempt_too(tmp_path: Path) -> None:
    """A signal can arrive while the engine awaits `submit` (e.g. `qsub` running): the
    attempt being submitted is cancelled as well, and nothing after it is submitted."""
    h = harness(tmp_path, {"t": {"command": "sleep 100", "instances": 4}}, slots=4)

    def cancel_now(_: object) -> None:
        assert h.engine is not None
        h.engine.cancel("cancelled by SIGTERM")

    b = Backend(default=Script(hang=True))
    b.script("j/t/1/1", hang=True, on_submit=cancel_now)
    out = h.apply(backend=b)
    assert out.exit_code == 130
    assert b.submitted == ["j/t/0/1", "j/t/1/1"]
    assert sorted(b.cancelled) == ["j/t/0/1", "j/t/1/1"]
    assert b.left_running_at_close == []
    assert [r["state"] for r in instance_rows(h, "t")] == ["cancelled"] * 4


# -- timeouts ----------------------------------------------------------------------------------


def test_a_timed_out_attempt_is_killed_recorded_and_retried(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {"slow": {"command": "sleep 100", "timeout": "50ms", "retries": 1, "retryBackoff": "1ms"}},
    )
    b = Backend()
    b.script("j/slow/0/1", hang=True)
    b.script("j/slow/0/2", duration=0.001)
    out = h.apply(backend=b)
    assert out.exit_code == 0
    assert b.cancelled == ["j/slow/0/1"]
    rows = attempt_rows(h, "slow")
    assert [r["state"] for r in rows] == ["timeout", "succeeded"]
    assert "timed out" in rows[0]["reason"]
    assert rows[0]["ended_at"] - rows[0]["started_at"] >= 0.05


def test_a_timeout_without_retries_fails_the_task(tmp_path: Path) -> None:
    h = harness(
        tmp_path,
        {
            "slow": {"command": "sleep 100", "timeout": "30ms"},
            "after": {"command": "true", "dependsOn": ["slow"]},
        },
    )
    b = Backend(default=Script(hang=True))
    out = h.apply(backend=b)
    assert out.exit_code == 1 and out.states == {"j": "failed"}
    assert [r["state"] for r in instance_rows(h, "slow")] == ["timeout"]
    assert [r["state"] for r in instance_rows(h, "after")] == ["upstream_failed"]
    assert b.left_running_at_close == []


def test_a_quick_attempt_is_not_affected_by_its_timeout(tmp_path: Path) -> None:
    h = harness(tmp_path, {"t": {"command": "true", "timeout": "40ms", "instances": 3}}, slots=1)
    b = Backend(default=Script(duration=0.02))
    out = h.apply(backend=b)
    # each attempt's clock starts when it starts: three 20 ms attempts in a row never time out
    assert out.exit_code == 0
    assert b.cancelled == []


# -- several jobs, reruns ----------------------------------------------------------------------


def test_jobs_in_one_apply_end_independently(tmp_path: Path) -> None:
    m1 = manifest(tmp_path, {"ok": {"command": "true"}}, name="one", file="one.yaml")
    m2 = write_job_only(tmp_path / "two.yaml", "two", {"bad": {"command": "false"}})
    h = Harness([m1, m2], tmp_path / ".runner")
    b = Backend()
    b.script("two/bad/*", exit_code=2)
    out = h.apply(backend=b)
    assert out.states == {"one": "succeeded", "two": "failed"}
    assert out.exit_code == 1


def test_only_changed_downstream_task_runs_and_only_once(tmp_path: Path) -> None:
    tasks: dict[str, dict[str, Any]] = {
        "up": {"command": "true", "instances": 2},
        "down": {"command": "echo one", "dependsOn": ["up"]},
    }
    h = harness(tmp_path, tasks)
    assert h.apply().exit_code == 0
    tasks["down"]["command"] = "echo two"
    manifest(tmp_path, tasks)
    b = Backend()
    out = h.apply(backend=b)
    assert out.exit_code == 0
    assert b.submitted == ["j/down/0/1"]
    assert task_states(h) == {"up": "skipped", "down": "succeeded"}


def test_state_survives_for_the_next_plan(tmp_path: Path) -> None:
    h = harness(tmp_path, {"t": {"command": "true", "instances": 2}})
    h.apply()
    st = State(tmp_path / ".runner")
    try:
        current = st.current("j")
    finally:
        st.close()
    assert {k: v.state for k, v in current.items()} == {
        ("t", 0): "succeeded",
        ("t", 1): "succeeded",
    }
    assert all(v.fingerprint for v in current.values())


def test_many_instances_are_polled_in_batches_no_bigger_than_slots(tmp_path: Path) -> None:
    n = 1500
    h = harness(
        tmp_path,
        {
            "fan": {"command": "true", "instances": n},
            "join": {"command": "true", "dependsOn": ["fan"]},
        },
        slots=8,
    )
    b = Backend()
    out = h.apply(backend=b)
    assert out.exit_code == 0 and out.counts == {"succeeded": n + 1}
    assert len(b.submitted) == n + 1 and b.submitted[-1] == "j/join/0/1"
    assert b.max_running == {"c": 8}
    # one batched poll per round, each for at most `slots` handles; exits that arrive
    # together are handled in one round, not one round (or one poll) per instance
    assert max(k for _, k in b.polls) <= 8
    assert len(b.polls) < n // 4, len(b.polls)
    assert {r["state"] for r in instance_rows(h, "fan")} == {"succeeded"}


def test_an_output_folder_that_cannot_be_made_fails_the_task_not_the_runner(
    tmp_path: Path,
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder must go\n")
    h = harness(
        tmp_path,
        {
            "first": {"command": "true"},
            "writes": {
                "command": "true",
                "outputs": {"out": "blocker/sub"},
                "instances": 2,
                "dependsOn": ["first"],
            },
            "after": {"command": "true", "dependsOn": ["writes"]},
            "other": {"command": "true"},
        },
    )
    b = Backend()
    out = h.apply(backend=b)
    assert out.states == {"j": "failed"} and out.exit_code == 1
    assert b.keys("writes") == [] and b.keys("other") == ["j/other/0/1"]
    rows = instance_rows(h, "writes")
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert "blocker" in rows[0]["reason"]
    assert [r["state"] for r in instance_rows(h, "after")] == ["upstream_failed"]
    assert task_states(h)["writes"] == "failed"


def test_runs_record_who_started_them_and_old_state_stores_gain_the_column(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import sqlite3

    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / "state.db")  # a store written before runs had a `user`
    db.execute(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL,"
        " state TEXT NOT NULL, reason TEXT, started_at REAL NOT NULL, ended_at REAL,"
        " manifest_digest TEXT, manifest_files TEXT, git_commit TEXT, pid INTEGER, host TEXT,"
        " cancel_requested INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("INSERT INTO runs (job, state, started_at) VALUES ('j', 'succeeded', 1.0)")
    db.commit()
    db.close()
    s = State(old)
    assert s.run(1)["user"] is None  # type: ignore[index]
    monkeypatch.setenv("RUNNER_USER", "ana (web)")
    rid = s.start_run(job="j", digest="d", files=[], git_commit=None)
    assert s.run(rid)["user"] == "ana (web)"  # type: ignore[index]
    s.close()
