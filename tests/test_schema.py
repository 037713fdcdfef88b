"""The committed JSON Schema (what editors use for completion) matches the models, and says what
the runner itself accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from runner.manifest.params import PARAM_TYPES
from tests.conftest import ROOT, cli
from tests.test_fuzz import BASE as FUZZ_BASE

COMMITTED = ROOT / "schemas" / "manifest.schema.json"
DEMO = ROOT / "manifests" / "demo" / "demo.yaml"


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COMMITTED.read_text())
    return data


def test_committed_schema_is_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "schema.json"
    r = cli("schema", "--out", str(fresh))
    assert r.code == 0, r.err
    assert fresh.read_text() == COMMITTED.read_text(), (
        "schemas/manifest.schema.json is stale: the models changed. "
        "Regenerate it with `runner schema` and commit the result."
    )


def test_schema_check_flag_agrees(tmp_path: Path) -> None:
    assert cli("schema", "--check", "--out", str(COMMITTED)).code == 0
    stale = tmp_path / "stale.json"
    stale.write_text("{}\n")
    r = cli("schema", "--check", "--out", str(stale))
    assert r.code == 2
    assert "is stale; regenerate it with `runner schema`" in r.err


def test_schema_has_the_three_document_kinds() -> None:
    s = schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["discriminator"]["propertyName"] == "kind"
    assert set(s["discriminator"]["mapping"]) == {"App", "Cluster", "Job"}
    defs = s["$defs"]
    for kind in ("App", "Cluster", "Job"):
        doc = defs[f"{kind}Doc"]
        assert set(doc["required"]) == {"apiVersion", "kind", "metadata", "spec"}
        assert doc["properties"]["kind"]["const"] == kind
        assert doc["properties"]["apiVersion"]["const"] == "runner/v1"
        assert doc["additionalProperties"] is False


def test_schema_uses_the_manifest_spelling_and_forbids_unknown_keys() -> None:
    defs = schema()["$defs"]
    task = defs["TaskSpec"]["properties"]
    for key in ("dependsOn", "retryOn", "retryBackoff", "app", "command", "instances", "timeout"):
        assert key in task
    assert "depends_on" not in task
    for name, definition in defs.items():
        assert definition.get("additionalProperties") is False, name
    assert defs["ParamSpec"]["properties"]["type"]["enum"] == list(PARAM_TYPES)


def _validate(doc: dict[str, Any]) -> list[str]:
    """Every problem a standard JSON Schema validator (what editors run) finds in `doc`."""
    validator = jsonschema.Draft202012Validator(schema())
    out: list[str] = []
    stack = list(validator.iter_errors(doc))
    while stack:  # the document union (oneOf) nests each branch's reasons in `context`
        e = stack.pop()
        out.append(e.message)
        stack.extend(e.context or [])
    return out


def test_demo_manifest_conforms_to_the_schema() -> None:
    docs = list(yaml.safe_load_all(DEMO.read_text()))
    assert [d["kind"] for d in docs] == ["App", "Cluster", "Job"]
    for doc in docs:
        assert _validate(doc) == []


def test_what_the_runner_accepts_conforms_to_the_schema(tmp_path: Path) -> None:
    """Editors must not underline a manifest the runner takes (numbers in env, list commands)."""
    (tmp_path / "m.yaml").write_text(FUZZ_BASE)
    assert cli("validate", str(tmp_path / "m.yaml")).code == 0
    for doc in yaml.safe_load_all(FUZZ_BASE):
        assert _validate(doc) == []


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            lambda d: d["spec"]["tasks"]["count"].update(dependson=["x"]),
            "'dependson' was unexpected",
        ),
        (lambda d: d["spec"]["tasks"]["count"].update(instances="two"), "'two' is not valid"),
        (lambda d: d.pop("metadata"), "'metadata' is a required property"),
        (lambda d: d["metadata"].update(name="has space"), "does not match"),
    ],
)
def test_schema_rejects_what_the_runner_rejects(edit: Any, says: str, tmp_path: Path) -> None:
    job = list(yaml.safe_load_all(DEMO.read_text()))[2]
    edit(job)
    assert any(says in p for p in _validate(job)), _validate(job)
    # and the runner agrees
    docs = [*list(yaml.safe_load_all(DEMO.read_text()))[:2], job]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    assert cli("validate", str(tmp_path / "m.yaml")).code == 2
