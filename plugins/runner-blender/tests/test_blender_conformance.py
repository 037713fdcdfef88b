"""The blender kind passes the core's kind conformance suite. Nothing renders (test_render.py
drives real Blender): the scene need not be a real one to be expanded."""

from __future__ import annotations

from pathlib import Path

from runner_blender import BlenderKind

from runner.conformance import KindConformance
from runner.contracts import Kind

JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: shots}
spec:
  tasks:
    conformance:
      kind: blender
      instances: 3
      params: {scene: scene.blend, frames: "1-7", format: PNG, samples: 2, threads: 1}
      inputs: {input: scenes}
      outputs: {output: out}
"""


class TestBlenderKind(KindConformance):
    def make_kind(self) -> Kind:
        return BlenderKind()

    def make_manifest(self, folder: Path) -> str:
        (folder / "scenes").mkdir()
        (folder / "scenes" / "scene.blend").write_bytes(b"BLENDER-v304")  # never opened here
        return JOB
