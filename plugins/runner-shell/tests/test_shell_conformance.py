"""The shell kind passes the core's kind conformance suite."""

from __future__ import annotations

from pathlib import Path

from runner_shell import ShellKind

from runner.conformance import KindConformance
from runner.contracts import Kind

JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: shell}
spec:
  tasks:
    conformance:
      kind: shell
      command: echo "$<greeting>" from $<instance_id> of $<instance_count> > $<out>/said.txt
      instances: 3
      params: {greeting: hello there}
      outputs: {out: out}
      env: {WHO: $<greeting>}
"""


class TestShellKind(KindConformance):
    def make_kind(self) -> Kind:
        return ShellKind()

    def make_manifest(self, folder: Path) -> str:
        return JOB
