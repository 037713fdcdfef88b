"""Small objects over a lean path: one kept-alive HTTP/1.1 connection per thread, requests
built and signed by oss2 itself (V1 or V4, whichever the bucket uses).

Why: for an object of a few KiB, oss2's trip through requests and urllib3 costs about 0.7 ms
of CPU, several times what the transfer does. Staging thousands of small files is then bound
by that CPU, and threads cannot help (one interpreter lock). Here the same signed request
costs a fraction of that: the request is one write, the response is read by content length
(or chunks), and nothing else is done. Errors become oss2's own exceptions (`make_exception`), so
callers handle them as they handle oss2's.

oss2 internals used: `Bucket._make_url`, `oss2.http.Request` and `auth._sign_request` — the
three steps of oss2's own `_Base._do`, whose sending part this replaces.
"""

from __future__ import annotations

import http.client
import mimetypes
import socket
import ssl
import threading
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import oss2
from oss2.exceptions import make_exception

__all__ = ["LeanClient"]


class _Reply:
    """What `make_exception` reads from a response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.request_id = headers.get("x-oss-request-id", "")
        self._body = body

    def read(self, amt: int | None = None) -> bytes:
        return self._body if amt is None else self._body[:amt]


class _Headers(dict[str, str]):
    """Response headers, looked up in lower case."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class LeanClient:
    """GET and PUT of whole objects of one bucket, HTTP/1.1 with keep-alive."""

    def __init__(self, bucket: oss2.Bucket, timeout: float = 60) -> None:
        self._bucket = bucket
        self._timeout = timeout
        self._local = threading.local()
        self._tls: ssl.SSLContext | None = None

    def _connection(self, scheme: str, netloc: str) -> tuple[socket.socket, BinaryIO]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn[2] == (scheme, netloc):
            return conn[0], conn[1]
        self._drop()
        host, _, port = netloc.rpartition(":") if "]" not in netloc.rpartition(":")[2] else ""
        if not host or not port.isdigit():
            host, port = netloc, "443" if scheme == "https" else "80"
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            sock = self._tls.wrap_socket(sock, server_hostname=host.strip("[]"))
        rfile = sock.makefile("rb")
        self._local.conn = (sock, rfile, (scheme, netloc))
        return sock, rfile

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn[1].close()
            conn[0].close()

    def request(
        self, method: str, key: str, data: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[_Headers, bytes]:
        """Send one signed request; raise oss2's exception for an error status, and
        OSError / http.client.HTTPException when the connection fails."""
        b = self._bucket
        req = oss2.http.Request(
            method, b._make_url(b.bucket_name, key), data=data, headers=headers,
            app_name=b.app_name, region=b.region, product=b.product, cloudbox_id=b.cloudbox_id,
        )  # fmt: skip
        b.auth._sign_request(req, b.bucket_name, key)
        url = urlsplit(req.url)
        target = url.path + (f"?{url.query}" if url.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{k}: {v}" for k, v in req.headers.items() if v is not None]
        lines.append(f"Content-Length: {len(data)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
        sock, rfile = self._connection(url.scheme, url.netloc)
        try:
            sock.sendall(message)
            status, got, body, keep = _read_response(rfile, method)
        except BaseException:
            self._drop()  # half a conversation: the next request starts a new connection
            raise
        if not keep:
            self._drop()
        if status // 100 != 2:
            raise make_exception(_Reply(status, got, body))
        return got, body

    def get(self, key: str) -> tuple[_Headers, bytes]:
        return self.request("GET", key)

    def put(self, key: str, data: bytes) -> _Headers:
        kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return self.request("PUT", key, data, {"Content-Type": kind})[0]


def _read_response(rfile: BinaryIO, method: str) -> tuple[int, _Headers, bytes, bool]:
    """(status, headers, body, connection reusable) of one HTTP/1.x response."""
    line = rfile.readline(_LINE)
    if not line:
        raise http.client.RemoteDisconnected("the server closed the connection")
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise http.client.BadStatusLine(line.decode("latin-1", "replace").strip())
    status = int(code)
    got = _Headers()
    while True:
        line = rfile.readline(_LINE)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise http.client.IncompleteRead(b"", None)
        name, _, value = line.decode("latin-1").partition(":")
        got[name.strip().lower()] = value.strip()
    keep = version != b"HTTP/1.0" and got.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, got, b"", keep
    if got.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(rfile.readline(_LINE).split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while rfile.readline(_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return status, got, b"".join(parts), keep
            parts.append(_exactly(rfile, size))
            rfile.readline(_LINE)
    if "content-length" in got:
        return status, got, _exactly(rfile, int(got["content-length"])), keep
    return status, got, rfile.read(), False  # until the server closes


def _exactly(rfile: BinaryIO, size: int) -> bytes:
    data = rfile.read(size)
    if len(data) != size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


_LINE = 65537
