"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
`runner serve` process. Log in, submit an App from its form (a bad value first: the problem
shows at its field), watch the run finish on its page without reloading it, read an
instance's log as it grows. Screenshots are kept in test-artefacts/web/."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from serving import serving  # beside this file

ROOT = Path(__file__).resolve().parents[3]
ARTEFACTS = ROOT / "test-artefacts" / "web"
CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's; `playwright install` cannot download here
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]  # fmt: skip
PASSWORD = "browser test password"

PROJECT = """
apiVersion: runner/v1
kind: App
metadata: {name: render, description: renders frames (a stand-in that writes one line a frame)}
spec:
  command: >-
    for f in $(seq $<first> $<last>); do echo "instance $RUNNER_INSTANCE_ID frame $f
    ($<format>, $<samples> samples)"; sleep $<pause>; done > $<out>/frames-$<instance_id>.txt;
    cat $<out>/frames-$<instance_id>.txt
  params:
    first: {type: int, min: 1, default: 1, description: first frame}
    last: {type: int, min: 1, max: 1000, default: 4, description: last frame}
    format: {type: enum, values: [PNG, JPEG, OPEN_EXR], default: PNG}
    samples: {type: int, min: 1, max: 4096, default: 64}
    pause: {type: float, min: 0, max: 10, default: 0.7, description: seconds a frame takes}
    scene: {type: path, default: shots/intro.blend, overridable: false}
  outputs: {out: {description: where the frames go}}
---
apiVersion: runner/v1
kind: Cluster
metadata: {name: workstation}
spec: {executor: local, slots: 2}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`runner serve` over a folder holding one project, `studio`; its base URL."""
    project = tmp_path / "studio"
    project.mkdir()
    (project / "studio.yaml").write_text(textwrap.dedent(PROJECT).lstrip())
    with serving(str(tmp_path), cwd=tmp_path, password=PASSWORD) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page: Page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def test_log_in_submit_watch_it_finish_live_and_read_a_log(server: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.goto(server + "/apps")
    expect(page).to_have_url(server + "/login")  # nothing without logging in
    page.fill("input[name=user]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('log in')")
    expect(page.locator("h1")).to_have_text("Runs")

    page.click("nav >> text=apps")
    expect(page.locator("text=renders frames")).to_be_visible()
    page.click("a:has-text('submit')")
    expect(page.locator("h1")).to_have_text("Submit render")
    # the form follows the App's types: a drop-down, bounded numbers, a read-only value
    assert page.locator("select[name='param.format'] option").all_inner_texts() == [
        "PNG", "JPEG", "OPEN_EXR"]  # fmt: skip
    assert page.get_attribute("input[name='param.samples']", "max") == "4096"
    assert page.input_value("#f-param\\.scene") == "shots/intro.blend"
    assert page.is_disabled("#f-param\\.scene")
    page.fill("input[name='param.last']", "3")
    page.fill("input[name='output.out']", "out/frames")
    page.select_option("select[name='param.format']", "JPEG")
    page.select_option("select[name='cluster']", "workstation")
    page.fill("input[name='instances']", "2")
    page.fill("input[name='param.pause']", "-1")  # below min: the browser itself refuses
    page.click("button:has-text('submit')")
    expect(page.locator("h1")).to_have_text("Submit render")  # not sent
    assert page.evaluate("document.querySelector(\"input[name='param.pause']\").validity.valid"
                         ) is False  # fmt: skip
    page.fill("input[name='param.pause']", "0.7")
    page.fill("input[name='param.first']", "0")  # below min, but sent past the browser's check
    page.evaluate("document.querySelector('form.submit').noValidate = true")
    page.click("button:has-text('submit')")
    error = page.locator("[data-error='param.first']")
    expect(error).to_contain_text("parameter 'first': 0 is below the smallest allowed, 1")
    shot(page, "1-form-with-an-error")
    assert page.input_value("input[name='param.last']") == "3"  # what was typed stays

    page.fill("input[name='param.first']", "1")
    page.fill("input[name='param.last']", "6")
    page.click("button:has-text('submit')")
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run_url = page.url
    expect(page.locator("[data-run-state]")).to_have_text("running")
    page.evaluate("window.stillTheSamePage = true")
    shot(page, "2-run-running")

    # the log page tails instance 0's stdout while it grows
    log = context.new_page()
    log.goto(f"{run_url}/log/render/0?stream=out")
    pre = log.locator("pre[data-tail]")
    expect(pre).to_contain_text("instance 0 frame 1 (JPEG, 64 samples)", timeout=30_000)
    expect(pre).to_contain_text("instance 0 frame 3", timeout=30_000)
    shot(log, "3-log-tail")

    # the run page follows the run to its end without being reloaded
    expect(page.locator("[data-run-state]")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("[data-instance='render/1']")).to_have_text("succeeded")
    expect(page.locator("[data-counts='render']")).to_contain_text("2 succeeded")
    expect(page.locator("[data-progress]")).to_have_text("2 of 2")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("button:has-text('cancel the run')")).to_have_count(0)
    # once it ended, the page shows its final version: exit codes, and no stale reasons
    expect(page.locator("[data-instance='render/0'] + td")).to_have_text("0")
    expect(page.locator("[data-run]")).to_have_attribute("data-state", "succeeded")
    shot(page, "4-run-succeeded")

    page.click("[data-instance='render/1'] ~ td a:has-text('stdout')")
    expect(page.locator("pre[data-tail]")).to_contain_text("instance 1 frame 6 (JPEG")
    # no script errors, nothing refused by the CSP (the form sent back with its problem comes
    # with status 422, which the console notes)
    assert [p for p in problems if "status of 422" not in p] == [], problems
    context.close()
