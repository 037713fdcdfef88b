#!/usr/bin/env python3
"""Benchmark: the dashboard (`runner serve`, a real uvicorn process) over a job of 10,000
instances.

1. Page times: the runs page and the run page of a run with N instances (default 10,000),
   applied for real, after 199 earlier runs of 100 instances each (written straight into the
   state store, so the runs page lists 200 runs, as many as it shows). Each is fetched over
   loopback HTTP, so the figure is an upper bound of the server's time. Baseline, same run:
   reading the same instances from the state store in this process (`State.instances`), the
   least any page of them must cost.
   Target (issue 7): <= 300 ms per page.
2. Live update: while a run of N instances is running (its last task sleeps), one client
   follows it the way the run page does (progress every 2 s) and a log page tails a log
   (every 1 s). The server process's CPU time over the window, from /proc, is the cost.
   Target (issue 7): <= 5% of one core.

    .venv/bin/python bench/bench_web.py               # N = 10,000, 20 fetches per page, 30 s
    .venv/bin/python bench/bench_web.py -n 2000 --window 10
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password, long enough"
JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {{name: big}}
spec:
  tasks:
    many: {{instances: {n}, command: "true"}}
    hold:
      dependsOn: [many]
      command: echo holding; sleep {hold}
"""


def runner(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def login(base: str) -> httpx.Client:
    c = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    for _ in range(100):
        try:
            page = c.get("/login").text
            break
        except httpx.TransportError:
            time.sleep(0.1)
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    r = c.post("/login", data={"user": "admin", "password": PASSWORD, "csrf": token.group(1)})
    assert r.status_code == 303, r.text
    return c


def timed(c: httpx.Client, path: str, times: int) -> float:
    """Median seconds of `times` fetches of `path` (after one to warm up)."""
    assert c.get(path).status_code == 200
    took = []
    for _ in range(times):
        t = time.perf_counter()
        r = c.get(path)
        took.append(time.perf_counter() - t)
        assert r.status_code == 200
    return statistics.median(took)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000, help="instances of the big task")
    ap.add_argument("--fetches", type=int, default=20, help="fetches per page")
    ap.add_argument("--earlier", type=int, default=199, help="earlier runs the runs page lists")
    ap.add_argument("--window", type=float, default=30, help="seconds the live update is measured")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp)
        (work / "big.yaml").write_text(JOB.format(n=args.n, hold=int(args.window + 60)))
        env = {**os.environ, "RUNNER_WEB_PASSWORD": PASSWORD}
        from runner.state import State

        s = State(work / ".runner")
        for _ in range(args.earlier):
            rid = s.start_run(job="earlier", digest="0" * 64, files=[], git_commit=None)
            done = [("t", i, "succeeded", None, None, None) for i in range(100)]
            s.record_plan(rid, [("t", "succeeded", None, 100)], done)
            s.finish_run(rid, "succeeded")
        s.close()
        big = args.earlier + 1
        t = time.perf_counter()
        apply = runner("apply", "big.yaml", cwd=work)
        state_dir = work / ".runner"
        port = free_port()
        serve = runner("serve", str(work), "--port", str(port), cwd=work, env=env)
        try:
            c = login(f"http://127.0.0.1:{port}")
            # wait until the big task is done and the holding one runs
            while True:
                run = c.get(f"/runs/{big}/progress.json")
                if run.status_code == 200 and run.json()["tasks"].get("hold") == "running":
                    break
                if apply.poll() is not None:
                    raise SystemExit(f"apply ended early: {apply.stderr.read().decode()}")
                time.sleep(0.5)
            print(f"applied {args.n} instances in {time.perf_counter() - t:.1f} s; the run goes on")

            s = State(state_dir, create=False)
            took = []
            for _ in range(args.fetches):
                t = time.perf_counter()
                rows = s.instances(big)
                took.append(time.perf_counter() - t)
            s.close()
            raw = statistics.median(took)
            assert len(rows) == args.n + 1

            runs_page = timed(c, "/", args.fetches)
            run_page = timed(c, f"/runs/{big}", args.fetches)
            progress = timed(c, f"/runs/{big}/progress.json", args.fetches)
            size = len(c.get(f"/runs/{big}").content)
            print(f"raw read of {args.n + 1} instances (baseline): {raw * 1000:7.1f} ms")
            for name, took_s in (("runs page", runs_page), ("run page", run_page),
                                 ("progress.json", progress)):  # fmt: skip
                print(f"{name:>15}: {took_s * 1000:7.1f} ms median of {args.fetches}"
                      f" ({took_s / raw:5.1f}x the raw read)  target <= 300 ms:"
                      f" {'met' if took_s <= 0.3 else 'MISSED'}")  # fmt: skip
            print(f"run page size: {size / 1e6:.2f} MB (500 instances a page; counts of all)")

            # the live update: what the run page and a log page ask for, for `window` seconds
            log = f"/runs/{big}/logs/hold/0?stream=out"
            offset = 0
            before, t0 = cpu_seconds(serve.pid), time.monotonic()
            next_progress = t0
            polls = 0
            while (now := time.monotonic()) < t0 + args.window:
                if now >= next_progress:
                    assert c.get(f"/runs/{big}/progress.json").status_code == 200
                    next_progress += 2
                    polls += 1
                r = c.get(f"{log}&offset={offset}")
                offset = int(r.headers.get("X-Log-Next", offset))
                time.sleep(1)
            used = cpu_seconds(serve.pid) - before
            share = used / (time.monotonic() - t0)
            print(
                f"live update: {polls} progress polls + a log tail each second over "
                f"{args.window:.0f} s cost the server {used:.2f} s of CPU = {share * 100:.2f}%"
                f" of one core  target <= 5%: {'met' if share <= 0.05 else 'MISSED'}"
            )
        finally:
            serve.send_signal(signal.SIGINT)
            apply.send_signal(signal.SIGINT)
            for p in (serve, apply):
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
