"""The dashboard's pages: the DAG of a run, the states it polls for, and `runner serve` as a
real server process answering over HTTP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from runner_web import make_app
from runner_web.auth import ensure_admin
from serving import free_port, wait_until_serving  # beside this file
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "a long enough password"


def _applied(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "manifests" / "demo",
        tmp_path / "demo",
        ignore=shutil.ignore_patterns(".runner", "out"),
    )
    r = subprocess.run(
        [sys.executable, "-m", "runner", "apply", "demo"], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp_path / "demo"


def _login(c: TestClient | httpx.Client) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert token
    r = c.post("/login", data={"user": "admin", "password": PASSWORD, "csrf": token.group(1)})
    assert r.status_code == 303, r.text


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """A logged-in client of the dashboard over the demo job, applied once."""
    demo = _applied(tmp_path)
    monkeypatch.setenv("RUNNER_WEB_PASSWORD", PASSWORD)
    ensure_admin(demo / ".runner")
    c = TestClient(make_app(demo / ".runner", manifests=demo), follow_redirects=False)
    _login(c)
    return c


def test_the_run_page_draws_the_dag_and_says_what_it_polls(served: TestClient) -> None:
    c = served
    page = c.get("/runs/1").text
    assert "<svg" in page and ">count</text>" in page and ">total</text>" in page
    assert page.count("<line ") == 1  # total depends on count
    assert '<script src="/static/live.js">' in page
    states = c.get("/runs/1/progress.json").json()
    assert states["state"] == "succeeded" and states["done"] == states["total"] == 5
    assert states["instances"]["count/3"] == "succeeded"
    assert c.get("/static/live.js").headers["content-type"].startswith("text/javascript")


def test_runner_serve_answers_over_http_and_prints_a_first_password_once(
    tmp_path: Path,
) -> None:
    demo = _applied(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_WEB_PASSWORD"}
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "demo", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        first = p.stdout.readline()
        found = re.match(r"first start: user admin, password (\S+) \(shown once", first)
        assert found, first
        password = found.group(1)
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base, p, 20)
        with httpx.Client(base_url=base, follow_redirects=False) as c:
            assert c.get("/").headers["location"] == "/login"
            token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
            assert token
            r = c.post("/login", data={"user": "admin", "password": password,
                                       "csrf": token.group(1)})  # fmt: skip
            assert r.status_code == 303
            assert "word-count" not in c.get("/").text and ">words<" in c.get("/").text
            log = c.get("/runs/1/logs/total/0?stream=out").text
            assert "hits" in log
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=20)
    again = subprocess.run(
        [sys.executable, "-c", "from runner_web.auth import ensure_admin; from pathlib import "
         f"Path; print(ensure_admin(Path({str(demo / '.runner')!r})))"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert again.stdout.strip() == "None"  # the password is never made (or shown) again


def test_a_log_is_tailed_from_an_offset_and_downloaded(served: TestClient) -> None:
    c = served
    whole = c.get("/runs/1/logs/total/0?stream=out")
    size = int(whole.headers["x-log-next"])
    assert size == len(whole.text.encode()) > 5
    rest = c.get(f"/runs/1/logs/total/0?stream=out&offset={size - 5}")
    assert rest.text == whole.text[-5:] and rest.headers["x-log-next"] == str(size)
    assert c.get(f"/runs/1/logs/total/0?stream=out&offset={size}").text == ""
    down = c.get("/runs/1/logs/total/0?stream=out&download=1")
    assert down.headers["content-disposition"] == 'attachment; filename="1-total-0.out"'
    page = c.get("/runs/1/log/total/0?stream=out").text
    assert 'data-tail="/runs/1/logs/total/0?stream=out"' in page
    assert c.get("/runs/1/logs/total/0?offset=x").status_code == 400


def test_a_big_task_is_listed_a_page_at_a_time_with_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "big.yaml").write_text(
        "apiVersion: runner/v1\nkind: Job\nmetadata: {name: big}\nspec:\n  tasks:\n"
        "    many: {instances: 1200, command: 'test $RUNNER_INSTANCE_ID != 7'}\n"
    )
    r = subprocess.run([sys.executable, "-m", "runner", "apply", "big.yaml"], cwd=tmp_path,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    monkeypatch.setenv("RUNNER_WEB_PASSWORD", PASSWORD)
    ensure_admin(tmp_path / ".runner")
    c = TestClient(make_app(tmp_path / ".runner", manifests=tmp_path), follow_redirects=False)
    _login(c)
    page = c.get("/runs/1").text
    assert ">1 failed</a> · " in page and ">1199 succeeded</a>" in page
    assert "instances 1–500 of 1200" in page and page.count("data-instance=") == 500
    assert 'href="/runs/1?task=many&amp;page=1">later' in page
    last = c.get("/runs/1?task=many&page=2").text
    assert "instances 1001–1200 of 1200" in last and last.count("data-instance=") == 200
    assert 'data-instance="many/1199"' in last and "later ›" not in last
    failed = c.get("/runs/1?state=failed").text
    assert failed.count("data-instance=") == 1 and 'data-instance="many/7"' in failed
    assert "retry what did not succeed" in failed
    counts = c.get("/runs/1/progress.json").json()["counts"]
    assert counts == {"many": {"failed": 1, "succeeded": 1199}}
