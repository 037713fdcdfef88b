"""A FAKE Cromwell server, at the level of its REST contract only: no Cromwell can be
installed here (no package in any reachable registry), so the `cromwell` engine is tested
against this. It checks what a real server would refuse (a multipart POST with
workflowSource, workflowInputs and labels as JSON, workflowType WDL) and answers with
Cromwell's shapes; it runs nothing. A workflow goes Submitted -> Running -> Succeeded after
`run_seconds`, with outputs from `outputs_for(inputs)`; an input whose value is "FAIL" makes it
end Failed with a failures tree like Cromwell's metadata; abort moves it to Aborted.

What is therefore NOT tested here: that Cromwell runs the WDL, its call caching, its real
timing and its file systems.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeCromwell:
    def __init__(self, run_seconds: float = 1.0) -> None:
        self.run_seconds = run_seconds
        self.workflows: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.outputs_for: Callable[[dict[str, Any]], dict[str, Any]] = lambda inputs: {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                parts = self.path.strip("/").split("/")
                if len(parts) != 5 or parts[:3] != ["api", "workflows", "v1"]:
                    return self._send(404, {"status": "fail", "message": "no such path"})
                w = fake.workflows.get(parts[3])
                if w is None:
                    return self._send(404, {"status": "fail", "message": "Unrecognized id"})
                fake._advance(w)
                if parts[4] == "status":
                    return self._send(200, {"id": w["id"], "status": w["status"]})
                if parts[4] == "outputs":
                    return self._send(200, {"id": w["id"], "outputs": w["outputs"]})
                if parts[4] == "metadata":
                    return self._send(200, {"id": w["id"], "status": w["status"],
                                            "failures": w["failures"]})  # fmt: skip
                return self._send(404, {"status": "fail", "message": "no such path"})

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                parts = self.path.strip("/").split("/")
                if parts == ["api", "workflows", "v1"]:
                    return self._submit()
                if len(parts) == 5 and parts[4] == "abort" and parts[3] in fake.workflows:
                    w = fake.workflows[parts[3]]
                    if w["status"] in ("Submitted", "Running"):
                        w["status"] = "Aborted"
                    return self._send(200, {"id": w["id"], "status": "Aborting"})
                return self._send(404, {"status": "fail", "message": "no such path"})

            def _submit(self) -> None:
                kind = self.headers.get("Content-Type", "")
                if not kind.startswith("multipart/form-data"):
                    return self._send(400, {"status": "fail", "message": "expected multipart"})
                length = int(self.headers.get("Content-Length", 0))
                message = email.message_from_bytes(
                    f"Content-Type: {kind}\r\n\r\n".encode() + self.rfile.read(length),
                    policy=email.policy.HTTP,
                )
                form: dict[str, str] = {}
                for part in message.iter_parts():  # type: ignore[attr-defined]
                    name = part.get_param("name", header="content-disposition")
                    form[str(name)] = part.get_payload(decode=True).decode()
                if "workflowSource" not in form:
                    return self._send(400, {"status": "fail", "message": "workflowSource?"})
                if form.get("workflowType", "WDL") != "WDL":
                    return self._send(400, {"status": "fail", "message": "only WDL"})
                try:
                    inputs = json.loads(form.get("workflowInputs", "{}"))
                    options = json.loads(form.get("workflowOptions", "{}"))
                    labels = json.loads(form.get("labels", "{}"))
                except ValueError as e:
                    return self._send(400, {"status": "fail", "message": f"bad JSON: {e}"})
                wid = str(uuid.uuid4())
                fake.workflows[wid] = {
                    "id": wid, "status": "Submitted", "since": time.monotonic(),
                    "source": form["workflowSource"], "inputs": inputs,
                    "options": options, "labels": labels, "outputs": {}, "failures": [],
                }  # fmt: skip
                return self._send(201, {"id": wid, "status": "Submitted"})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _advance(self, w: dict[str, Any]) -> None:
        if w["status"] not in ("Submitted", "Running"):
            return
        elapsed = time.monotonic() - w["since"]
        if elapsed < self.run_seconds:
            w["status"] = "Running" if elapsed > self.run_seconds / 3 else "Submitted"
            return
        if "FAIL" in json.dumps(w["inputs"]):
            w["status"] = "Failed"
            w["failures"] = [{"message": "Workflow failed", "causedBy": [
                {"message": "Job two.second:NA:1 exited with return code 1", "causedBy": []}
            ]}]  # fmt: skip
        else:
            w["status"] = "Succeeded"
            w["outputs"] = self.outputs_for(w["inputs"])

    def __enter__(self) -> FakeCromwell:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
