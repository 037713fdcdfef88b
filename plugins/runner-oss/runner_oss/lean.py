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

import asyncio
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
        host, port = _host_port(scheme, netloc)
        sock = socket.create_connection((host, port), timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            sock = self._tls.wrap_socket(sock, server_hostname=host)
        rfile = sock.makefile("rb")
        self._local.conn = (sock, rfile, (scheme, netloc))
        return sock, rfile

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn[1].close()
            conn[0].close()

    def _message(
        self, method: str, key: str, data: bytes, headers: dict[str, str] | None
    ) -> tuple[str, str, bytes]:
        """(scheme, host:port, the whole signed request as bytes)."""
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
        return url.scheme, url.netloc, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data

    def request(
        self, method: str, key: str, data: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[_Headers, bytes]:
        """Send one signed request; raise oss2's exception for an error status, and
        OSError / http.client.HTTPException when the connection fails."""
        scheme, netloc, message = self._message(method, key, data, headers)
        sock, rfile = self._connection(scheme, netloc)
        try:
            sock.sendall(message)
            status, got, keep = _parse_head(_read_head(rfile))
            body, reusable = _read_body(rfile, method, status, got)
        except BaseException:
            self._drop()  # half a conversation: the next request starts a new connection
            raise
        if not (keep and reusable):
            self._drop()
        return _checked(status, got, body)

    async def request_async(
        self, conn: list[Any], method: str, key: str, data: bytes = b""
    ) -> tuple[_Headers, bytes]:
        """`request` on an asyncio connection kept in `conn` ([] at first: it is opened,
        and emptied again when it cannot be reused), for many requests in one thread."""
        scheme, netloc, message = self._message(method, key, data, None)
        if not conn:
            host, port = _host_port(scheme, netloc)
            if self._tls is None and scheme == "https":
                self._tls = ssl.create_default_context()
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=self._tls if scheme == "https" else None, limit=_LINE
                ),
                self._timeout,
            )
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn[:] = [reader, writer]
        reader, writer = conn
        try:
            writer.write(message)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._timeout)
            status, got, keep = _parse_head(head)
            length = got.get("content-length")
            if method == "HEAD" or status in (204, 304):
                body = b""
            elif length is not None and "chunked" not in got.get("transfer-encoding", ""):
                body = await asyncio.wait_for(reader.readexactly(int(length)), self._timeout)
            else:
                raise http.client.HTTPException("a response without a length")
        except BaseException:
            writer.close()
            conn.clear()
            raise
        if not keep:
            writer.close()
            conn.clear()
        return _checked(status, got, body)

    def get(self, key: str) -> tuple[_Headers, bytes]:
        return self.request("GET", key)

    def put(self, key: str, data: bytes) -> _Headers:
        kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return self.request("PUT", key, data, {"Content-Type": kind})[0]


def _host_port(scheme: str, netloc: str) -> tuple[str, int]:
    host, _, port = netloc.rpartition(":")
    if not host or not port.isdigit():
        host, port = netloc, "443" if scheme == "https" else "80"
    return host.strip("[]"), int(port)


def _read_head(rfile: BinaryIO) -> bytes:
    """Status line and headers, up to the empty line."""
    lines = []
    while True:
        line = rfile.readline(_LINE)
        if not line:
            if not lines:
                raise http.client.RemoteDisconnected("the server closed the connection")
            raise http.client.IncompleteRead(b"", None)
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_head(head: bytes) -> tuple[int, _Headers, bool]:
    """(status, headers, connection reusable) from a response's head."""
    first, _, rest = head.partition(b"\n")
    version, _, tail = first.partition(b" ")
    code = tail[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise http.client.BadStatusLine(first.decode("latin-1", "replace").strip())
    got = _Headers()
    for line in rest.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            got[name.strip().lower()] = value.strip()
    keep = version != b"HTTP/1.0" and got.get("connection", "").lower() != "close"
    return int(code), got, keep


def _read_body(rfile: BinaryIO, method: str, status: int, got: _Headers) -> tuple[bytes, bool]:
    """The body, and whether the connection can be reused after it."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", True
    if got.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(rfile.readline(_LINE).split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while rfile.readline(_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts), True
            parts.append(_exactly(rfile, size))
            rfile.readline(_LINE)
    if "content-length" in got:
        return _exactly(rfile, int(got["content-length"])), True
    return rfile.read(), False  # until the server closes


def _checked(status: int, got: _Headers, body: bytes) -> tuple[_Headers, bytes]:
    if status // 100 != 2:
        raise make_exception(_Reply(status, got, body))
    return got, body


def _exactly(rfile: BinaryIO, size: int) -> bytes:
    data = rfile.read(size)
    if len(data) != size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


_LINE = 65537
