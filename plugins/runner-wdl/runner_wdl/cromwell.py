"""What one `wdl` instance runs with `engine: cromwell`: the workflow submitted to a Cromwell
server, followed until it ends.

    python -m runner_wdl.cromwell --url URL --workflow W.wdl (--inputs-json '{...}'
        | --inputs-file FILE)
        [--options-json '{...}'] [--labels-json '{...}'] [--out DIR] [--id-file FILE]

`--id-file` defaults to `$RUNNER_STATE_DIR/wdl/<job>/<task>/cromwell-workflow-id`.

Uses Cromwell's REST API (v1): POST /api/workflows/v1 (workflowSource, workflowInputs,
workflowOptions, labels), then GET .../{id}/status until it ends, .../{id}/outputs and, for a
failure, .../{id}/metadata; on SIGTERM or SIGINT, POST .../{id}/abort. The workflow id goes to
`--id-file` before polling starts: a later attempt follows that workflow if it is still
running and is the same workflow with the same inputs and options (else it is aborted and a
new one submitted), instead of submitting again. Outputs (paths on the Cromwell server's
file system) go to stdout and to `<out>/outputs.json`; files this machine sees are copied.
Exit codes: 0 succeeded, 1 failed, 2 refused, 130 aborted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import requests

__all__ = ["main"]

RUNNING = {"Submitted", "Running", "Aborting", "On Hold"}
API = "/api/workflows/v1"


class _Stop(Exception):
    pass


def _failures(meta: dict[str, Any]) -> list[str]:
    """Every message in metadata's `failures` tree, innermost last."""
    out: list[str] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for f in items:
            if f.get("message"):
                out.append(str(f["message"]))
            walk(f.get("causedBy") or [])

    walk(meta.get("failures") or [])
    return out


def _get_json(http: requests.Session, url: str, tries: int = 6) -> Any:
    """GET `url` as JSON, again after a growing pause while the server fails for a passing
    reason (a 5xx, a dropped connection, a reply that is not JSON)."""
    for attempt in range(tries):
        try:
            r = http.get(url, timeout=60)
            if r.status_code < 500:
                r.raise_for_status()
                return r.json()
            problem: Exception = requests.HTTPError(f"{r.status_code} from {url}")
        except (requests.ConnectionError, requests.Timeout, ValueError) as e:
            problem = e
        if attempt == tries - 1:
            raise problem
        time.sleep(min(2.0**attempt, 16.0))
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="runner_wdl.cromwell")
    ap.add_argument("--url", required=True)
    ap.add_argument("--workflow", required=True)
    ap.add_argument("--inputs-json", default="{}")
    ap.add_argument("--inputs-file", help="JSON or YAML, paths relative to it (for big ones)")
    ap.add_argument("--options-json", default="{}")
    ap.add_argument("--labels-json", default="{}")
    ap.add_argument("--out")
    state = Path(os.environ.get("RUNNER_STATE_DIR") or ".runner") / "wdl"
    where = [os.environ.get(v, "by-hand") for v in ("RUNNER_JOB", "RUNNER_TASK")]
    ap.add_argument("--id-file", default=str(state.joinpath(*where, "cromwell-workflow-id")))
    ap.add_argument("--poll", type=float, default=5.0, help="seconds between status queries")
    args = ap.parse_args(argv)
    base = args.url.rstrip("/") + API
    http = requests.Session()

    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        # noted, not raised: a request in flight (the submission above all) must finish, so
        # that the workflow it made is known and can be aborted
        stopping.append(signum)

    def pause(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if stopping:
                raise _Stop()
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    inputs_json = args.inputs_json
    if args.inputs_file:
        from runner_wdl.run import namespaced_inputs, read_inputs

        path = Path(args.inputs_file).resolve()
        import WDL

        doc = WDL.load(args.workflow)
        inputs_json = json.dumps(namespaced_inputs(doc, read_inputs(path), path.parent))
    wid = None
    status = "Submitted"
    id_file = Path(args.id_file) if args.id_file else None
    try:
        # what is submitted: a running workflow is followed only if it is this very one
        digest = hashlib.sha256(
            Path(args.workflow).read_bytes() + inputs_json.encode() + args.options_json.encode()
        ).hexdigest()[:16]
        if id_file is not None and id_file.is_file():
            known, _, was = id_file.read_text().strip().partition(" ")
            st = http.get(f"{base}/{known}/status", timeout=60)
            if st.ok and st.json().get("status") in RUNNING - {"Aborting"}:
                if was == digest:
                    wid = known
                    print(f"runner-wdl: following Cromwell workflow {wid}", file=sys.stderr)
                else:  # the workflow or its inputs changed since: the old run must not go on
                    _abort(http, base, known)
        if wid is None:
            files = {
                "workflowSource": (
                    Path(args.workflow).name,
                    Path(args.workflow).read_bytes(),
                    "text/plain",
                ),
                "workflowInputs": ("inputs.json", inputs_json, "application/json"),
                "workflowOptions": ("options.json", args.options_json, "application/json"),
                "labels": ("labels.json", args.labels_json, "application/json"),
            }
            r = http.post(base, files=files, data={"workflowType": "WDL"}, timeout=60)
            if not r.ok:
                print(f"runner-wdl: Cromwell refused the workflow ({r.status_code}): "
                      f"{r.text[:500]}", file=sys.stderr)  # fmt: skip
                return 2
            wid = r.json()["id"]
            if id_file is not None:
                id_file.parent.mkdir(parents=True, exist_ok=True)
                id_file.write_text(f"{wid} {digest}\n")
            print(f"runner-wdl: submitted to Cromwell as workflow {wid}", file=sys.stderr)
        status = "Submitted"
        while status in RUNNING:
            pause(args.poll)
            status = _get_json(http, f"{base}/{wid}/status")["status"]
        print(f"runner-wdl: Cromwell workflow {wid}: {status}", file=sys.stderr)
        if status != "Succeeded":
            meta = _get_json(http, f"{base}/{wid}/metadata")
            for message in _failures(meta) or [f"the workflow ended {status}"]:
                print(f"runner-wdl: cromwell: {message}", file=sys.stderr)
            return 1
        outputs = _get_json(http, f"{base}/{wid}/outputs").get("outputs", {})
    except _Stop:
        _abort(http, base, wid)
        return 130
    except (requests.RequestException, ValueError, KeyError) as e:
        print(f"runner-wdl: cromwell: {args.url}: {type(e).__name__}: {e}", file=sys.stderr)
        if wid is not None and status in RUNNING:
            _abort(http, base, wid)  # nobody would follow it: it must not run on
        return 1
    if args.out:
        from runner_wdl.run import _copy_outputs

        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            outputs = _copy_outputs(outputs, out)
            (out / "outputs.json").write_text(json.dumps(outputs, indent=1, sort_keys=True) + "\n")
        except OSError as e:
            print(f"runner-wdl: outputs not stored in {out}: {e}", file=sys.stderr)
            return 1
    print(json.dumps(outputs, indent=1, sort_keys=True))
    return 0


def _abort(http: requests.Session, base: str, wid: str | None) -> None:
    if wid is None:
        return
    try:
        http.post(f"{base}/{wid}/abort", timeout=60)
        print(f"runner-wdl: asked Cromwell to abort {wid}", file=sys.stderr)
    except requests.RequestException as e:
        print(f"runner-wdl: could not abort {wid}: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
