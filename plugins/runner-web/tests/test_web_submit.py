"""Submitting an App from the dashboard: the form its typed parameters make, problems shown at
the field (the same ones `runner validate` reports), a real run started, a failed run retried;
the projects and clusters pages."""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from runner_web import make_app
from runner_web.auth import ensure_admin
from serving import serving  # beside this file
from starlette.testclient import TestClient

PASSWORD = "a long enough password"

PROJECT = """
apiVersion: runner/v1
kind: App
metadata: {name: greet, description: writes a greeting per instance}
spec:
  command: >-
    { test "$RUNNER_INSTANCE_ID" = 0 || test -e open-sesame; } && ls $<gate> >/dev/null &&
    printf '%s %s x%s %s %s %s\\n' $<greeting> $<style> $<times> $<loud> $<frames> $<site>
    > $<out>/greet-$<instance_id>.txt
  params:
    greeting: {type: string, default: hello, description: what to say}
    style: {type: enum, values: [plain, fancy], default: plain}
    times: {type: int, min: 1, max: 5, default: 2}
    loud: {type: bool, default: false}
    frames: {type: frames, required: true}
    site: {type: string, default: studio-a, overridable: false}
  inputs: {gate: {description: a folder to read}}
  outputs: {out: {description: one greet-N.txt per instance}}
---
apiVersion: runner/v1
kind: App
metadata: {name: nap}
spec:
  command: sleep 60
---
apiVersion: runner/v1
kind: App
metadata: {name: show-env}
spec:
  command: env
---
apiVersion: runner/v1
kind: Cluster
metadata: {name: pool}
spec: {executor: local, slots: 3}
---
apiVersion: runner/v1
kind: Job
metadata: {name: nightly}
spec:
  tasks:
    render:
      command: echo $<scene> > $<frames>/f.txt
      inputs: {scene: oss://studio/scenes/shot-1/}
      outputs: {frames: oss://studio/renders/shot-1/}
      logs: oss://studio/logs/
    summary:
      command: echo done > $<report>/summary.txt
      outputs: {report: out/summary}
"""


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, Path]:
    """A logged-in client of a dashboard serving a folder with one project, `studio`."""
    project = tmp_path / "studio"
    project.mkdir()
    (project / "studio.yaml").write_text(textwrap.dedent(PROJECT).lstrip())
    (project / "gate").mkdir()
    monkeypatch.setenv("RUNNER_WEB_PASSWORD", PASSWORD)
    state = tmp_path / ".runner"
    ensure_admin(state)
    c = TestClient(make_app(state, manifests=tmp_path), follow_redirects=False)
    _login(c)
    return c, project


def _login(c: httpx.Client) -> None:
    token = _csrf(c.get("/login").text)
    r = c.post("/login", data={"user": "admin", "password": PASSWORD, "csrf": token})
    assert r.status_code == 303, r.text


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _post(c: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    return c.post(path, data={"csrf": _csrf(c.get("/apps").text), **data})


def _field(page: str, name: str) -> str:
    """The HTML of one field of the form."""
    found = re.search(
        rf'<div class="[^"]*" data-field="{re.escape(name)}">(.*?)\n</div>', page, re.S
    )
    assert found, f"no field {name} in the form"
    return found.group(1)


def _errors(page: str, name: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(
        rf'data-error="{re.escape(name)}">([^<]*)<', page)]  # fmt: skip


def _wait(
    c: httpx.Client, run: int, until: tuple[str, ...], timeout: float = 60
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = c.get(f"/runs/{run}/progress.json").json()
        if data["state"] in until:
            return data
        time.sleep(0.2)
    raise AssertionError(f"run {run} still {data['state']}")


GOOD = {
    "project": "studio", "app": "greet", "param.greeting": "hi", "param.style": "fancy",
    "param.times": "3", "param.loud": "true", "param.frames": "1-4", "input.gate": "gate",
    "output.out": "out/greetings", "cluster": "pool", "instances": "2",
}  # fmt: skip


def test_the_form_is_made_from_the_apps_typed_parameters(studio: tuple[TestClient, Path]) -> None:
    c, _ = studio
    apps = c.get("/apps").text
    assert 'href="/submit?project=studio&amp;app=greet"' in apps
    assert "writes a greeting per instance" in apps
    page = c.get("/submit?project=studio&app=greet").text
    style = _field(page, "param.style")
    assert "<select" in style and re.findall(r'<option value="(\w+)"', style) == ["plain", "fancy"]
    assert '<option value="plain" selected>' in style  # the default, chosen
    times = _field(page, "param.times")
    assert 'type="number"' in times and 'min="1"' in times and 'max="5"' in times
    assert 'value="2"' in times and 'step="1"' in times
    assert re.findall(r'<option value="(\w+)"', _field(page, "param.loud")) == ["true", "false"]
    assert 'value="hello"' in _field(page, "param.greeting")
    frames = _field(page, "param.frames")
    assert "required" in frames and 'value=""' in frames
    site = _field(page, "param.site")  # not overridable: shown, not sent
    assert 'value="studio-a" readonly disabled' in site and "name=" not in site
    assert "required" in _field(page, "input.gate") and "required" in _field(page, "output.out")
    assert '<option value="pool">pool</option>' in _field(page, "cluster")
    assert 'value="1" min="1"' in _field(page, "instances")
    assert c.get("/submit?project=studio&app=nope").status_code == 404
    assert c.get("/submit?project=../studio&app=greet").status_code == 404


def _validate(project: Path, task: str) -> list[str]:
    """What `runner validate` says of the project with a job holding `task`."""
    job = project / "by-hand.yaml"
    job.write_text("apiVersion: runner/v1\nkind: Job\nmetadata: {name: by-hand}\n"
                   f"spec:\n  cluster: pool\n  tasks:\n    greet: {task}\n")  # fmt: skip
    said = subprocess.run([sys.executable, "-m", "runner", "validate", str(project), "-o", "json"],
                          capture_output=True, text=True)  # fmt: skip
    job.unlink()
    assert said.returncode == 2, said.stdout + said.stderr
    return [d["message"] for d in json.loads(said.stdout)["errors"]]


def test_problems_appear_at_their_field_exactly_as_validate_says_them(
    studio: tuple[TestClient, Path],
) -> None:
    c, project = studio
    bad = {**GOOD, "param.times": "9", "param.style": "gaudy", "param.frames": "5-1",
           "output.out": ""}  # fmt: skip
    r = _post(c, "/submit", bad)
    assert r.status_code == 422
    page = r.text
    said = _validate(project, "{app: greet, instances: 2, params: {greeting: hi, style: gaudy, "
                     "times: '9', loud: 'true', frames: 5-1}, inputs: {gate: gate}}")  # fmt: skip
    assert len(said) == 3, said
    for field, name in (("param.times", "'times'"), ("param.style", "'style'"),
                        ("param.frames", "'frames'")):  # fmt: skip
        assert _errors(page, field) == [m for m in said if name in m], page
    assert "9 is above the largest allowed, 5" in _errors(page, "param.times")[0]
    assert _errors(page, "output.out") == ["output out is required"]
    # the values sent stay in the form, and nothing was written or started
    assert 'value="9"' in _field(page, "param.times")
    assert not list(project.glob(".submitted-*"))
    assert "No runs yet" in c.get("/").text
    # a problem with the shape of the job is at its field too
    r = _post(c, "/submit", {**GOOD, "instances": "0"})
    assert r.status_code == 422
    said = _validate(project, "{app: greet, instances: 0, params: {frames: 1-4}}")
    assert (
        _errors(r.text, "instances")
        == said
        == ["spec.tasks.greet.instances: Input should be greater than or equal to 1"]
    )


def test_a_submission_runs_and_a_failed_one_is_retried_from_its_page(
    studio: tuple[TestClient, Path],
) -> None:
    c, project = studio
    r = _post(c, "/submit", GOOD)
    assert r.status_code == 303, r.text
    first = int(r.headers["location"].rsplit("/", 1)[1])
    done = _wait(c, first, ("failed", "succeeded"))
    assert done["state"] == "failed"  # instance 1 waits for a file named open-sesame
    assert done["instances"] == {"greet/0": "succeeded", "greet/1": "failed"}
    runs = c.get("/").text
    assert "<td>admin (web)</td>" in runs  # who submitted it
    written = list(project.glob(".submitted-greet-*.yaml"))
    assert len(written) == 1
    page = c.get(f"/runs/{first}").text
    assert "retry what did not succeed" in page
    (project / "open-sesame").write_text("")
    again = _post(c, f"/runs/{first}/retry", {})
    assert again.status_code == 303, again.text
    second = int(again.headers["location"].rsplit("/", 1)[1])
    assert second > first
    done = _wait(c, second, ("failed", "succeeded"))
    assert done["state"] == "succeeded"
    assert done["instances"] == {"greet/0": "skipped", "greet/1": "succeeded"}  # 0 was done
    out = project / "out" / "greetings"
    texts = sorted(p.read_text() for p in out.rglob("greet-*.txt"))
    assert texts == ["hi fancy x3 true 1-4 studio-a\n"] * 2
    assert "retry what did not succeed" not in c.get(f"/runs/{second}").text
    refused = _post(c, f"/runs/{second}/retry", {})
    assert refused.status_code == 409 and "succeeded" in refused.text


def test_a_folder_served_by_a_relative_path_takes_submissions(tmp_path: Path) -> None:
    """`runner serve manifests`, the folder named relative to where the server starts: a
    submission is accepted, its run shows on the runs page and is kept in the served folder's
    own .runner/, and the paths in the form are the project's."""
    served = tmp_path / "manifests"
    project = served / "studio"
    project.mkdir(parents=True)
    (project / "studio.yaml").write_text(textwrap.dedent(PROJECT).lstrip())
    (project / "gate").mkdir()
    (project / "open-sesame").write_text("")  # every instance of greet may succeed
    with serving("manifests", cwd=tmp_path, password=PASSWORD) as base, httpx.Client(
        base_url=base, follow_redirects=False, timeout=60
    ) as c:
        _login(c)
        r = _post(c, "/submit", GOOD)
        assert r.status_code == 303, r.text
        run = int(r.headers["location"].rsplit("/", 1)[1])
        assert f'<a href="/runs/{run}">{run}</a>' in c.get("/").text
        assert _wait(c, run, ("failed", "succeeded"))["state"] == "succeeded"
    assert (served / ".runner" / "state.db").is_file()
    assert not [str(d) for d in tmp_path.rglob(".runner") if d != served / ".runner"]
    texts = sorted(f.read_text() for f in (project / "out" / "greetings").rglob("greet-*.txt"))
    assert texts == ["hi fancy x3 true 1-4 studio-a\n"] * 2


def test_a_submission_that_apply_refuses_says_why_on_the_form(
    studio: tuple[TestClient, Path],
) -> None:
    c, _ = studio
    r = _post(c, "/submit", {**GOOD, "input.gate": "oss://nobucket-here/x/"})
    assert r.status_code == 422
    said = " ".join(html.unescape(e) for e in re.findall(r"<li>([^<]*)</li>", r.text))
    assert "no OSS credentials for bucket 'nobucket-here'" in said  # apply's pre-flight


def test_projects_show_where_data_comes_from_and_goes(studio: tuple[TestClient, Path]) -> None:
    c, project = studio
    (project.parent / "broken").mkdir()
    (project.parent / "broken" / "b.yaml").write_text("kind: Job\nmetadata: {name: x}\n")
    page = c.get("/projects").text
    for where in ("oss://studio/scenes/shot-1/", "oss://studio/renders/shot-1/",
                  "oss://studio/logs/"):  # fmt: skip
        assert f"<code>{where}</code>" in page
    assert "<code>out/summary</code>" in page  # a folder of the project, as the manifest says
    assert "<h2>broken</h2>" in page and "b.yaml:1" in page  # its problem, with its place
    assert "3 app(s), 1 cluster(s), 1 job(s)" in page


def test_clusters_show_slots_what_runs_and_the_schedulers_hosts(
    studio: tuple[TestClient, Path],
) -> None:
    c, project = studio
    farm = project.parent / "farm"
    farm.mkdir()
    (farm / "sge.yaml").write_text(
        "apiVersion: runner/v1\nkind: Cluster\nmetadata: {name: grid}\n"
        "spec: {executor: sge, queue: all.q}\n"
    )
    r = _post(c, "/submit", {"project": "studio", "app": "nap", "cluster": "pool",
                             "instances": "2"})  # fmt: skip
    assert r.status_code == 303, r.text
    run = int(r.headers["location"].rsplit("/", 1)[1])
    try:
        deadline = time.monotonic() + 30
        while True:
            page = c.get("/clusters").text
            running = re.search(r'data-running="pool/local">(\d+)<', page)
            assert running, page
            if running.group(1) == "2" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert running.group(1) == "2"
        row = page[page.index("<td>pool</td>") :].split("</tr>")[0]
        assert "<td>local</td>" in row and "<td>3</td>" in row  # its slots
        assert "<td>grid</td><td>sge</td><td>all.q</td>" in page
        assert "sge hosts" in page and socket.gethostname() in page.split("sge hosts")[1]
    finally:
        _post(c, f"/runs/{run}/cancel", {})
    _wait(c, run, ("cancelled", "failed"))
    assert re.search(r'data-running="pool/local">0<', c.get("/clusters").text)


def test_no_page_shows_the_storage_secret(
    studio: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OSS credentials in the server's environment: an App whose storage cannot be
    reached (the error comes back on the form), an App that prints its environment (its log),
    and every page: the secret is in none of them."""
    c, project = studio
    secret = "s3cr3t-web-Value-0123456789"
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAIwebtest")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", secret)
    monkeypatch.setenv("OSS_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    refused = _post(c, "/submit", {**GOOD, "input.gate": "oss://bucket/in/"})
    assert refused.status_code == 422 and "oss://bucket/in/" in html.unescape(refused.text)
    r = _post(c, "/submit", {"project": "studio", "app": "show-env", "instances": "1"})
    assert r.status_code == 303, r.text
    run = int(r.headers["location"].rsplit("/", 1)[1])
    _wait(c, run, ("succeeded", "failed"))
    log = c.get(f"/runs/{run}/logs/show-env/0?stream=out").text
    assert "OSS_ACCESS_KEY_ID=LTAIwebtest" in log  # the environment is there, less the secret
    assert PASSWORD not in log  # nor the dashboard's password, which the server was given
    pages = [refused.text, log]
    for path in ("/", "/apps", "/projects", "/clusters", f"/runs/{run}",
                 f"/runs/{run}/progress.json", f"/runs/{run}/log/show-env/0?stream=out",
                 "/submit?project=studio&app=greet"):  # fmt: skip
        pages.append(c.get(path).text)
    assert not [p for p in pages if secret in p]
    assert secret not in "".join(
        p.read_text(errors="replace") for p in (project.parent / ".runner").rglob("*")
        if p.is_file() and p.suffix != ".db"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("output.out", "/tmp/elsewhere"), ("output.out", "../outside"),
     ("input.gate", "../../etc"), ("input.gate", ".runner"), ("input.gate", "gate/../../x"),
     ("output.out", "file:///tmp/x")],
)  # fmt: skip
def test_a_form_cannot_reach_outside_its_project(
    studio: tuple[TestClient, Path], field: str, value: str
) -> None:
    c, project = studio
    r = _post(c, "/submit", {**GOOD, field: value})
    assert r.status_code == 422
    said = _errors(r.text, field)
    assert said and ("inside the project" in said[0] or "relative to the project" in said[0]
                     or "hidden folders" in said[0]), said  # fmt: skip
    assert not list(project.glob(".submitted-*")) and "No runs yet" in c.get("/").text


def test_odd_characters_in_a_value_stay_that_value(studio: tuple[TestClient, Path]) -> None:
    c, project = studio
    odd = "a\u2028b\x85c \"q\" 'x' \\ \ufeffz: #y"
    r = _post(c, "/submit", {**GOOD, "param.greeting": odd, "param.times": "9"})
    assert r.status_code == 422  # times is out of bounds; greeting itself is fine
    assert _errors(r.text, "param.greeting") == []
    assert [e for e in _errors(r.text, "param.times") if "9 is above" in e]
    from runner_web.projects import Form, Projects

    from runner.manifest.loader import load

    p = Projects(project.parent).get("studio")
    assert p is not None and p.bundle is not None
    form = Form(p, p.bundle.apps["greet"])
    form.fill({**GOOD, "param.greeting": odd})
    text, _ = form.manifest("odd-job", "admin")
    (project / ".submitted-odd-job.yaml").write_text(text)
    bundle = load([str(project / "studio.yaml"), str(project / ".submitted-odd-job.yaml")])
    assert bundle.jobs["odd-job"].tasks["greet"].params["greeting"] == odd


def test_broken_projects_say_so_and_old_runs_are_not_retried_blindly(
    studio: tuple[TestClient, Path],
) -> None:
    import sqlite3

    c, project = studio
    (project / "broken.yaml").write_text("kind: Job\n")
    assert "Project studio does not load" in c.get("/apps").text
    r = c.get("/submit?project=studio&app=greet")
    assert r.status_code == 409 and "broken.yaml" in r.text
    assert c.get("/submit?project=%00&app=greet").status_code == 404
    (project / "broken.yaml").unlink()
    r = _post(c, "/submit", {"project": "studio", "app": "show-env", "instances": "1"})
    run = int(r.headers["location"].rsplit("/", 1)[1])
    _wait(c, run, ("succeeded",))
    db = sqlite3.connect(project.parent / ".runner" / "state.db")
    db.execute("UPDATE runs SET state = 'failed', manifest_files = ? WHERE id = ?",
               ('["studio/studio.yaml"]', run))  # fmt: skip
    db.commit()
    db.close()
    refused = _post(c, f"/runs/{run}/retry", {})
    assert refused.status_code == 409 and "retry it with `runner apply`" in refused.text
    huge = c.get(f"/runs/{run}/logs/show-env/0?stream=out&offset={10**30}")
    assert huge.status_code == 200 and huge.text == ""


def test_a_long_chain_of_tasks_is_drawn() -> None:
    from runner_web.app import _dag

    edges = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(3000)}
    drawn = _dag(dict(reversed(list(edges.items()))), {})
    assert len(drawn["boxes"]) == 3000 and drawn["width"] == 40 + 3000 * 200
