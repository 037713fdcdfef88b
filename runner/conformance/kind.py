"""The kind conformance suite: what every kind plugin must do, as pytest tests.

A kind's own tests subclass `KindConformance` and provide `make_kind()` and `make_manifest()`
(a Job with one valid task of the kind, named `conformance`). The checks load that manifest as
`runner validate` does and use the kind the way the planner and the engine do: check it,
expand it (again in the next `runner plan`, in another process, whose fingerprints must be the
same), verify an instance after exit code 0 and explain one after a failure. Nothing runs an
instance, so the suite is fast; a kind's own tests run real ones.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.contracts import InstanceSpec, Kind, Task

__all__ = ["KindConformance"]

# expands the task in a process of its own, as the next `runner plan` does
_EXPAND_ELSEWHERE = """\
import dataclasses, json, sys
from runner import plugins
from runner.api import validate
task = next(iter(validate([sys.argv[1]]).jobs.values())).tasks[sys.argv[2]]
specs = plugins.load("kind", task.kind)().expand(task=task)
print(json.dumps([dataclasses.asdict(s) for s in specs], sort_keys=True, default=str))
"""


class KindConformance:
    """Subclass in a plugin's tests and implement `make_kind` and `make_manifest`."""

    task_name = "conformance"

    def make_kind(self) -> Kind:
        """A fresh kind to test."""
        raise NotImplementedError

    def make_manifest(self, folder: Path) -> str:
        """A Job (YAML; with the App it uses, if any) holding a task named `conformance` of
        this kind that `runner validate` accepts. It is written into `folder`; write any file
        it needs there too. Keep it cheap to expand: it is expanded many times."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    def _manifest(self, folder: Path) -> Path:
        path = folder / "conformance.yaml"
        path.write_text(self.make_manifest(folder))
        return path

    def _task(self, folder: Path) -> Task:
        from runner.api import validate  # here: the suite's import stays as light as can be

        job = next(iter(validate([str(self._manifest(folder))]).jobs.values()))
        return job.tasks[self.task_name]

    @staticmethod
    def _as_json(specs: list[InstanceSpec]) -> str:
        """The specs as the fingerprints see them (keys sorted, paths as text)."""
        return json.dumps([dataclasses.asdict(s) for s in specs], sort_keys=True, default=str)

    # -- the checks -------------------------------------------------------------------------

    def test_the_declared_members_are_well_formed(self) -> None:
        """default_command, placeholders and runs_in_image are what the loader can use: a
        default command is a program (a non-empty string or list, no `$<placeholders>`)."""
        kind = self.make_kind()
        assert isinstance(kind, Kind)
        default = kind.default_command
        if isinstance(default, str):
            assert default.strip() and "$<" not in default, default
        elif default is not None:
            assert isinstance(default, list) and default, default
            assert all(isinstance(p, str) and p and "$<" not in p for p in default), default
        assert isinstance(kind.placeholders, frozenset)
        assert all(isinstance(p, str) and p.isidentifier() for p in kind.placeholders)
        assert isinstance(kind.runs_in_image, bool)

    def test_a_valid_task_has_nothing_to_report(self, tmp_path: Path) -> None:
        """`check` finds nothing wrong with the task `runner validate` accepted."""
        task = self._task(tmp_path)
        assert self.make_kind().check(task=task, upstream_outputs={}) == []

    def test_a_task_without_its_parameters_is_reported_not_raised(self, tmp_path: Path) -> None:
        """Whatever a manifest leaves out, `check` answers with problems (parameter or None,
        message, hint), which validate shows at their lines, and never with an exception."""
        task = dataclasses.replace(self._task(tmp_path), params={}, param_types={})
        problems = self.make_kind().check(task=task, upstream_outputs={})
        assert isinstance(problems, list)
        for problem in problems:
            param, message, hint = problem
            assert param is None or isinstance(param, str), problem
            assert isinstance(message, str) and message, problem
            assert hint is None or isinstance(hint, str), problem

    def test_expand_gives_one_spec_per_instance_in_index_order(self, tmp_path: Path) -> None:
        """Instance i is specs[i]; each has a command line to run and text values only."""
        task = self._task(tmp_path)
        specs = self.make_kind().expand(task=task)
        assert specs, "a task has at least one instance"
        # the planner takes a derived count (blender's chunk); the manifest here sets none
        assert len(specs) == task.instances
        assert [s.index for s in specs] == list(range(len(specs)))
        for s in specs:
            assert isinstance(s, InstanceSpec)
            assert s.argv and all(isinstance(a, str) for a in s.argv), s.argv
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in s.env.items())
            assert all(
                isinstance(k, str) and isinstance(v, str) for k, v in s.fingerprint_extra.items()
            )
            assert s.description is None or isinstance(s.description, str)
            assert s.workdir is None or s.workdir.is_absolute()

    def test_expand_is_the_same_every_time_and_in_every_process(self, tmp_path: Path) -> None:
        """Same task, same specs: again, from a fresh kind, and in another process (the next
        `runner plan`, with other hash seeds), or every plan would rerun the task."""
        task = self._task(tmp_path)
        kind = self.make_kind()
        first = self._as_json(kind.expand(task=task))
        assert self._as_json(kind.expand(task=task)) == first
        assert self._as_json(self.make_kind().expand(task=task)) == first
        manifest = str(tmp_path / "conformance.yaml")
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _EXPAND_ELSEWHERE, manifest, self.task_name],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONHASHSEED": seed},
            )
            for seed in ("1", "2")
        ]  # fmt: skip
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            assert out.strip() == first, "another process expands the task differently"

    def test_each_expand_gives_specs_of_its_own(self, tmp_path: Path) -> None:
        """The planner edits specs in place (each instance's output folder and environment):
        that must not reach the task, or the specs of the next expand."""
        task = self._task(tmp_path)
        before = copy.deepcopy(task)
        kind = self.make_kind()
        snapshot = self._as_json(kind.expand(task=task))
        for spec in kind.expand(task=task):
            spec.argv.append("--edited-by-the-planner")
            spec.env["EDITED_BY_THE_PLANNER"] = "1"
            spec.fingerprint_extra["edited"] = "1"
        assert self._as_json(kind.expand(task=task)) == snapshot
        assert task == before, "expand changed the task"

    def test_the_tasks_environment_reaches_every_instance(self, tmp_path: Path) -> None:
        """What a task's `env:` sets is in every instance's environment."""
        task = self._task(tmp_path)
        task = dataclasses.replace(task, env={**task.env, "RUNNER_CONFORMANCE": "set by env:"})
        for spec in self.make_kind().expand(task=task):
            assert spec.env.get("RUNNER_CONFORMANCE") == "set by env:", spec.env

    def test_every_declared_placeholder_is_filled_in(self, tmp_path: Path) -> None:
        """A command may use each placeholder the kind declares; expand replaces them all."""
        kind = self.make_kind()
        names = sorted(kind.placeholders)
        if not names:
            pytest.skip("the kind declares no placeholders of its own")
        command = ["printf", "%s\\n", *(f"$<{n}>" for n in names)]
        task = dataclasses.replace(self._task(tmp_path), command=command)
        for spec in kind.expand(task=task):
            left = [a for a in spec.argv if any(f"$<{n}>" in a for n in names)]
            assert left == [], f"instance {spec.index}: placeholders left in {left}"

    def test_verify_and_explain_answer_with_none_or_a_reason(self, tmp_path: Path) -> None:
        """After an attempt that wrote nothing (a stream it wrote nothing to may have no file
        at all) or wrote a little, verify and explain say None or why, never raise."""
        task = self._task(tmp_path)
        kind = self.make_kind()
        logs = tmp_path / "logs"
        logs.mkdir()
        streams = {
            "missing": (logs / "none.out", logs / "none.err"),
            "empty": (logs / "empty.out", logs / "empty.err"),
            "written": (logs / "some.out", logs / "some.err"),
        }
        for path in streams["empty"]:
            path.write_text("")
        for path in streams["written"]:
            path.write_text("working\nError: something went wrong\n")
        for spec in kind.expand(task=task):
            for stdout, stderr in streams.values():
                why = kind.verify(task=task, instance=spec, stdout=stdout, stderr=stderr)
                assert why is None or (isinstance(why, str) and why), why
                said = kind.explain(task=task, exit_code=1, stdout=stdout, stderr=stderr)
                assert said is None or (isinstance(said, str) and said), said
