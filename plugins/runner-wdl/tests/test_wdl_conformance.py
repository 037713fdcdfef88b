"""The wdl kind passes the core's kind conformance suite (expanded, not run: test_wdl.py runs
workflows)."""

from __future__ import annotations

from pathlib import Path

from runner_wdl import WDLKind

from runner.conformance import KindConformance
from runner.contracts import Kind

WORKFLOW = """\
version 1.0
workflow greet {
  input { String who = "world"  File note }
  call say { input: who = who, note = note }
  output { File said = say.out }
}
task say {
  input { String who  File note }
  command <<< cat ~{note}; echo "hello ~{who}" > said.txt >>>
  output { File out = "said.txt" }
}
"""
JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: flows}
spec:
  tasks:
    conformance:
      kind: wdl
      params:
        workflow: greet.wdl
        inputs: {who: conformance, note: note.txt}
      outputs: {out: out}
"""


class TestWDLKind(KindConformance):
    def make_kind(self) -> Kind:
        return WDLKind()

    def make_manifest(self, folder: Path) -> str:
        (folder / "greet.wdl").write_text(WORKFLOW)
        (folder / "note.txt").write_text("a file input: its size and time are fingerprinted\n")
        return JOB
