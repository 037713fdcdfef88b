"""Reading SGE's own output, as captured from the SGE 8.1.9 of scripts/schedulers."""

from __future__ import annotations

from runner_sge import parse_qacct, parse_qstat, parse_tasks

from runner.contracts import QueueEntry

# `qstat -f -xml` with all.q disabled (`qmod -d all.q`) and an array job waiting
DISABLED = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <Queue-List>
      <name>all.q@vm</name>
      <qtype>BIP</qtype>
      <slots_used>0</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>2</slots_total>
      <load_avg>1.25439</load_avg>
      <arch>lx-amd64</arch>
      <state>d</state>
    </Queue-List>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>770</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>probe</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-24T03:13:06</JB_submission_time>
      <slots>1</slots>
      <tasks>1-3:1</tasks>
    </job_list>
  </job_info>
</job_info>"""


def test_waiting_jobs_say_why_no_queue_takes_them() -> None:
    entries = parse_qstat(DISABLED)
    assert set(entries) == {("770", 1), ("770", 2), ("770", 3)}
    assert entries[("770", 2)] == QueueEntry(
        "queued", "qw: waiting for a slot; no queue can take it: all.q@vm is d (disabled)"
    )
    daemon_down = DISABLED.replace("<state>d</state>", "<state>u</state>")
    assert "all.q@vm is u (unknown: its execution daemon does not answer)" in str(
        parse_qstat(daemon_down)[("770", 1)].reason
    )
    healthy = DISABLED.replace("<state>d</state>", "")
    assert parse_qstat(healthy)[("770", 1)].reason == "qw: waiting for a slot"


def test_array_task_notation() -> None:
    assert parse_tasks("1-7:2,9") == [1, 3, 5, 7, 9]
    assert parse_tasks("4") == [4]


def test_qacct_of_a_killed_task() -> None:
    text = "=" * 62 + "\ntaskid       2\nfailed       100 : assumedly after job\n"
    text += "exit_status  137                  (Killed)\n"
    assert parse_qacct(text) == {2: (137, "SGE: failed 100 : assumedly after job, exit status 137")}
