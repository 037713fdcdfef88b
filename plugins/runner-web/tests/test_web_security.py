"""The dashboard's guards, through Starlette's test client against a real state directory
made by `runner apply`: login, sessions, CSRF, log paths, escaping, secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from runner_web import make_app
from runner_web.app import PUBLIC
from runner_web.auth import ensure_admin
from starlette.testclient import TestClient

JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {name: web}
spec:
  tasks:
    "t":
      instances: 2
      command: echo '<script>alert(1)</script>' $<word>; echo err-$<instance_id> >&2
      params: {word: hello}
"""
PASSWORD = "correct horse battery staple"


@pytest.fixture
def made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "m.yaml").write_text(JOB)
    r = subprocess.run(
        [sys.executable, "-m", "runner", "apply", "m.yaml"], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    monkeypatch.setenv("RUNNER_WEB_PASSWORD", PASSWORD)
    state = tmp_path / ".runner"
    assert ensure_admin(state) is None  # set from the environment: nothing to print
    return state


def client(state: Path) -> TestClient:
    return TestClient(make_app(state), base_url="http://127.0.0.1", follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def logged_in(state: Path) -> tuple[TestClient, str]:
    c = client(state)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"user": "admin", "password": PASSWORD, "csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return c, csrf_of(c.get("/").text)


def routes(state: Path, method: str) -> list[str]:
    """Every path of the app served for `method`, with 1, t and 0 for its parameters."""
    found = []
    for route in make_app(state).routes:
        if method in (getattr(route, "methods", None) or ()):
            path = route.path
            found.append(
                re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "t" if m.group(1) == "task" else "1", path)
            )
    assert found
    return found


def test_every_page_but_login_needs_a_session(made: Path) -> None:
    c = client(made)
    gets = routes(made, "GET")
    assert {"/", "/runs/1", "/runs/1/logs/t/1", "/apps", "/projects", "/clusters",
            "/submit"} <= set(gets)  # fmt: skip
    for path in gets:
        if path not in PUBLIC:
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/login", path
    for path in routes(made, "POST"):
        if path != "/login":
            assert c.post(path, data={"csrf": "x"}).status_code == 401, path
    assert c.get("/login").status_code == 200
    assert {"/login", "/favicon.ico", "/static/style.css", "/static/live.js"} == PUBLIC
    assert c.get("/static/../state.db").status_code in (303, 404)


def test_a_wrong_password_or_a_missing_csrf_token_gets_nowhere(made: Path) -> None:
    c = client(made)
    token = csrf_of(c.get("/login").text)
    bad = c.post("/login", data={"user": "admin", "password": "rm_admin@123", "csrf": token})
    assert bad.status_code == 200 and "wrong user or password" in bad.text
    assert c.post("/login", data={"user": "admin", "password": PASSWORD}).status_code == 403
    assert c.get("/").status_code == 303  # still not in


def test_mutating_calls_need_the_sessions_csrf_token(made: Path) -> None:
    c, token = logged_in(made)
    other, _ = logged_in(made)  # another session's token is not this one's
    posts = routes(made, "POST")
    assert {"/runs/1/cancel", "/runs/1/retry", "/submit", "/logout"} <= set(posts)
    for path in posts:
        if path == "/login":
            continue
        assert c.post(path).status_code == 403, path
        assert c.post(path, data={"csrf": "forged"}).status_code == 403, path
        assert c.post(path, headers={"x-csrf-token": "forged"}).status_code == 403, path
        assert other.post(path, data={"csrf": token}).status_code == 403, path
    done = c.post("/runs/1/cancel", data={"csrf": token})  # the run ended: says so, 400
    assert done.status_code in (303, 400)


def test_pages_escape_what_commands_and_logs_contain(made: Path) -> None:
    c, _ = logged_in(made)
    page = c.get("/runs/1").text
    assert "<script>" not in page
    log = c.get("/runs/1/logs/t/0?stream=out")
    assert log.status_code == 200 and "<script>alert(1)</script> hello" in log.text
    assert log.headers["content-type"].startswith("text/plain")
    assert c.get("/runs/1/logs/t/1?stream=err").text == "err-1\n"
    assert "default-src 'self'" in log.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/runs/1/logs/..%2F..%2Fweb-users.json/0",
        "/runs/1/logs/t/0?stream=../../web-users.json",
        "/runs/1/logs/%2Fetc%2Fpasswd/0",
        "/runs/1/logs/t/9",
        "/runs/1/logs/t/0?attempt=..%2F..",
    ],
)
def test_logs_cannot_be_read_outside_the_runs_log_folder(made: Path, path: str) -> None:
    c, _ = logged_in(made)
    r = c.get(path)
    assert r.status_code in (400, 404), r.text
    assert "pbkdf2" not in r.text and "root:" not in r.text


def test_a_log_path_pointing_out_by_symlink_is_refused(made: Path) -> None:
    import sqlite3

    secret = made / "web-users.json"
    link = made / "logs" / "1" / "t" / "evil.out"
    os.symlink(secret, link)
    db = sqlite3.connect(made / "state.db")
    db.execute("UPDATE attempts SET stdout = ? WHERE task = 't' AND idx = 0", (str(link),))
    db.commit()
    db.close()
    c, _ = logged_in(made)
    r = c.get("/runs/1/logs/t/0?stream=out")
    assert r.status_code == 404 and "pbkdf2" not in r.text


def test_the_password_is_stored_hashed_and_private(made: Path) -> None:
    text = (made / "web-users.json").read_text()
    assert PASSWORD not in text and "pbkdf2_sha256$" in text
    assert (made / "web-users.json").stat().st_mode & 0o777 == 0o600


def test_first_start_makes_a_random_password_shown_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNNER_WEB_PASSWORD", raising=False)
    first = ensure_admin(tmp_path)
    assert first and len(first) >= 12 and first not in ("rm_admin@123", "admin")
    assert ensure_admin(tmp_path) is None  # never again
    assert first not in (tmp_path / "web-users.json").read_text()
