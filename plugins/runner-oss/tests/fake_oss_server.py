"""A FAKE Alibaba Cloud OSS server for tests. It is not the real service.

It speaks enough of the OSS REST dialect, over path-style addressing
(``http://127.0.0.1:PORT/<bucket>/<key>``, which is what ``oss2`` uses for IP
endpoints), for the ``oss2`` SDK to run unchanged against it.

* In-memory buckets, objects and multipart uploads; standard library only.
  CRC-64/ECMA-182 uses ``crcmod`` if it is installed (``oss2`` depends on it)
  and otherwise a slower pure-Python table.
* Authentication: OSS signature V1 (``Authorization: OSS id:sig`` and presigned
  ``OSSAccessKeyId/Expires/Signature`` URLs) and V4
  (``OSS4-HMAC-SHA256 Credential=...`` headers and ``x-oss-signature`` URLs),
  plus STS security tokens.
* OSS-dialect XML without namespaces, OSS error documents, the OSS status
  codes, ``x-oss-request-id`` on every response, OSS ETags and
  ``x-oss-hash-crc64ecma``.
* Fault switches for tests: ``fail_rate``, ``drop_rate``, ``fail_next``,
  ``drop_next``, ``fault_ops``, ``corrupt_crc`` and ``delay``.

Usage::

    with FakeOSSServer("ak", "sk") as server:
        server.create_bucket("bkt")
        bucket = oss2.Bucket(oss2.Auth("ak", "sk"), server.endpoint, "bkt")
        bucket.put_object("k", b"data")
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as dt
import email.utils
import hashlib
import hmac
import itertools
import random
import re
import socket
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

__all__ = ["FakeOSSServer", "crc64ecma", "multipart_etag", "oss_etag"]

# --------------------------------------------------------------------------- checksums

_CRC64_POLY_REVERSED = 0xC96C5795D7870F42
_CRC64_MASK = 0xFFFFFFFFFFFFFFFF


def _make_crc64() -> Any:
    try:
        import crcmod
    except ImportError:  # pragma: no cover - oss2 always brings crcmod
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ _CRC64_POLY_REVERSED if c & 1 else c >> 1
            table.append(c)

        def crc(data: bytes) -> int:
            c = _CRC64_MASK
            for b in data:
                c = table[(c ^ b) & 0xFF] ^ (c >> 8)
            return c ^ _CRC64_MASK

        return crc
    # Same parameters as oss2.utils.Crc64 (CRC-64/XZ, i.e. ECMA-182 reflected).
    return crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=_CRC64_MASK)


_crc64 = _make_crc64()


def crc64ecma(data: bytes) -> int:
    """CRC-64/ECMA-182 exactly as OSS reports it in ``x-oss-hash-crc64ecma``."""
    return int(_crc64(bytes(data)))


def oss_etag(data: bytes) -> str:
    """ETag (without quotes) OSS gives an object uploaded in one piece."""
    return hashlib.md5(data).hexdigest().upper()


def multipart_etag(part_etags: Iterable[str]) -> str:
    """ETag (without quotes) of a multipart object made of parts with these ETags."""
    etags = [e.strip('"') for e in part_etags]
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in etags)).hexdigest().upper()
    return f"{digest}-{len(etags)}"


# --------------------------------------------------------------------------- protocol data

# Query parameters that OSS signature V1 puts into the canonicalized resource
# (the "sub-resources", the same set oss2 2.19.1 signs); every other query parameter
# is left out of a V1 signature.
# fmt: off
_V1_SUBRESOURCES = frozenset((
    "accessPoint", "accessPointPolicy", "acl", "append", "asyncFetch",
    "bucketArchiveDirectRead", "bucketInfo", "callback", "callback-var", "cname", "comp",
    "continuation-token", "cors", "delete", "encryption", "endTime", "group", "httpsConfig",
    "inventory", "inventoryId", "lifecycle", "link", "live", "location", "logging", "metaQuery",
    "objectInfo", "objectMeta", "partNumber", "policy", "position", "publicAccessBlock", "qos",
    "qosInfo", "qosRequester", "redundancyTransition", "referer", "regionList", "replication",
    "replicationLocation", "replicationProgress", "requestPayment", "requesterQosInfo",
    "resourceGroup", "resourcePool", "resourcePoolBuckets", "resourcePoolInfo",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "restore",
    "security-token", "sequential", "startTime", "stat", "status", "style", "styleName",
    "symlink", "tagging", "transferAcceleration", "uploadId", "uploads", "versionId",
    "versioning", "versions", "vod", "website", "worm", "wormExtend", "wormId",
    "x-oss-ac-forward-allow", "x-oss-ac-source-ip", "x-oss-ac-subnet-mask", "x-oss-ac-vpc-id",
    "x-oss-access-point-name", "x-oss-async-process", "x-oss-process",
    "x-oss-redundancy-transition-taskid", "x-oss-request-payer", "x-oss-target-redundancy-type",
    "x-oss-traffic-limit", "x-oss-write-get-object-response",
))
# fmt: on

# Sub-resources this fake understands; a request carrying any other one is
# answered 501 NotImplemented rather than silently treated as a plain request.
# fmt: off
_HANDLED_SUBRESOURCES = frozenset((
    "append", "bucketInfo", "continuation-token", "delete", "location", "objectMeta",
    "partNumber", "position", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type",
    "response-expires", "security-token", "stat", "uploadId", "uploads",
))
# fmt: on

_STORED_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_V4_ALGORITHM = "OSS4-HMAC-SHA256"
_V4_TERMINATOR = "aliyun_v4_request"
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_MAX_KEYS_LIMIT = 1000
_OWNER_ID = "1318888800000000"


def _iso8601(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _http_date(ts: float) -> str:
    return email.utils.formatdate(int(ts), usegmt=True)


def _parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _parse_v4_date(value: str) -> float | None:
    try:
        parsed = dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC).timestamp()


def _v4_quote(text: str, keep_slash: bool) -> str:
    # RFC 3986 unreserved characters stay, everything else is %XX (uppercase).
    return quote(text, safe="/" if keep_slash else "")


def _etag_matches(condition: str, etag: str) -> bool:
    for candidate in condition.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        candidate = candidate.strip('"')
        if candidate == "*" or candidate.upper() == etag.upper():
            return True
    return False


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --------------------------------------------------------------------------- model


@dataclass
class _Object:
    data: bytes
    etag: str  # uppercase hex, no quotes
    crc: int
    last_modified: int
    object_type: str  # Normal, Multipart or Appendable
    headers: dict[str, str]  # lower-case names: stored standard headers and x-oss-meta-*
    storage_class: str = "Standard"

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream")


@dataclass
class _Part:
    data: bytes
    etag: str
    crc: int
    last_modified: int


@dataclass
class _Upload:
    key: str
    upload_id: str
    initiated: int
    headers: dict[str, str]
    storage_class: str
    parts: dict[int, _Part] = field(default_factory=dict)


@dataclass
class _Bucket:
    name: str
    created: int
    acl: str = "private"
    storage_class: str = "Standard"
    objects: dict[str, _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)


@dataclass
class _Request:
    method: str
    path: str
    bucket: str
    key: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    request_id: str
    host: str
    body: bytes = b""
    auth_version: str = ""


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # For HEAD: the Content-Length the body would have had.
    head_length: int | None = None


class _OSSError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


def _no_bucket(name: str) -> _OSSError:
    return _OSSError(
        404, "NoSuchBucket", "The specified bucket does not exist.", {"BucketName": name}
    )


def _no_key(key: str) -> _OSSError:
    return _OSSError(404, "NoSuchKey", "The specified key does not exist.", {"Key": key})


def _no_upload(upload_id: str) -> _OSSError:
    return _OSSError(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
        {"UploadId": upload_id},
    )


def _malformed_xml() -> _OSSError:
    return _OSSError(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published "
        "schema.",
    )


def _invalid_argument(message: str, name: str, value: str) -> _OSSError:
    return _OSSError(
        400, "InvalidArgument", message, {"ArgumentName": name, "ArgumentValue": value}
    )


def _xml(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8")


def _sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _xml_response(
    root: ET.Element, status: int = 200, headers: dict[str, str] | None = None
) -> _Response:
    hdrs = {"Content-Type": "application/xml"}
    hdrs.update(headers or {})
    return _Response(status, hdrs, _xml(root))


# --------------------------------------------------------------------------- HTTP plumbing


class _DropConnection(Exception):
    """Close the connection without sending anything."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK would stall many responses by ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return "AliyunOSS"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track_connection(self.connection, add=False)

    def _serve(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a client opening more connections at once would
    # see some of its SYNs dropped and retried a second later (OSS takes them all)
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeOSSServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections dropped on purpose (or by clients) are not errors worth printing.
        pass


# --------------------------------------------------------------------------- the server


class FakeOSSServer:
    """In-memory FAKE OSS endpoint for tests (not the real service).

    Attributes meant to be changed by tests at any time:

    ``fail_rate``
        fraction (0..1) of requests answered with an OSS error 500 InternalError or
        503 ServiceUnavailable (status drawn from ``fail_statuses``).
    ``drop_rate``
        fraction of requests whose connection is closed after the request headers,
        without any response (the client sees a connection error).
    ``fail_next`` / ``drop_next``
        the next N eligible requests fail / are dropped (deterministic).
    ``fault_ops``
        ``None`` (all operations) or a set of operation names (e.g. ``{"GetObject"}``)
        the four switches above apply to.
    ``corrupt_crc``
        send a wrong ``x-oss-hash-crc64ecma`` on GetObject/HeadObject/GetObjectMeta.
    ``delay``
        seconds to sleep before handling each request.
    ``min_part_size``
        minimum size of every part but the last at CompleteMultipartUpload (OSS: 100 KiB).
    ``max_time_skew``
        allowed clock difference of signed requests in seconds (``None`` disables).

    Counters: ``requests`` (``collections.Counter`` by operation name, see
    ``requests.total()``), ``injected`` (faults injected by kind), ``request_log``
    (recent ``(operation, method, path, status)``; status ``None`` for dropped
    connections) and ``server_errors`` (tracebacks of bugs in this fake).
    """

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        region: str = "cn-test",
        security_token: str | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.region = region
        self.host = host
        self._requested_port = port
        self._credentials: dict[str, tuple[str, str | None]] = {}
        self.add_credentials(access_key_id, access_key_secret, security_token)

        self.fail_rate = 0.0
        self.drop_rate = 0.0
        self.fail_next = 0
        self.drop_next = 0
        self.fault_ops: set[str] | None = None
        self.fail_statuses: tuple[int, ...] = (500, 503)
        self.corrupt_crc = False
        self.delay = 0.0
        self.min_part_size = 100 * 1024
        self.max_time_skew: float | None = 15 * 60
        # (bucket, key prefix) whose objects list and HEAD fine but refuse GET, as OSS does
        # for an object encrypted with a KMS key the caller may not use
        self.deny_get: set[tuple[str, str]] = set()

        self.random = random.Random(seed)
        self.requests: collections.Counter[str] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self.request_log: collections.deque[tuple[str, str, str, int | None]] = collections.deque(
            maxlen=10000
        )
        self.server_errors: list[str] = []

        self._lock = threading.RLock()  # storage
        self._stats_lock = threading.Lock()  # counters, random, fault budget
        self._buckets: dict[str, _Bucket] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._request_seq = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOSSServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-oss-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._stats_lock:
            connections = list(self._connections)
        for conn in connections:  # keep-alive connections still owned by handler threads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOSSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOSSServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ test helpers

    def add_credentials(
        self, access_key_id: str, access_key_secret: str, security_token: str | None = None
    ) -> None:
        """Accept another key pair; with ``security_token`` it behaves as STS credentials."""
        self._credentials[access_key_id] = (access_key_secret, security_token)

    def create_bucket(self, name: str, *, acl: str = "private") -> None:
        """Create a bucket (no error if it already exists)."""
        if not _BUCKET_NAME_RE.match(name):
            raise ValueError(f"invalid OSS bucket name: {name!r}")
        with self._lock:
            self._buckets.setdefault(name, _Bucket(name, int(time.time()), acl=acl))

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            self._buckets.pop(name, None)

    @property
    def buckets(self) -> list[str]:
        with self._lock:
            return sorted(self._buckets)

    def put_object(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store an object directly (no HTTP); returns its ETag without quotes."""
        headers = {"content-type": content_type}
        for name, value in (metadata or {}).items():
            headers["x-oss-meta-" + name.lower()] = value
        obj = _Object(
            bytes(data), oss_etag(data), crc64ecma(data), int(time.time()), "Normal", headers
        )
        with self._lock:
            self._bucket(bucket).objects[key] = obj
        return obj.etag

    def get_object(self, bucket: str, key: str) -> bytes:
        """Stored bytes of an object (no HTTP); raises KeyError if absent."""
        with self._lock:
            return self._bucket_or_keyerror(bucket).objects[key].data

    def object_info(self, bucket: str, key: str) -> dict[str, Any]:
        """Stored metadata of an object: etag, crc, size, type, content_type, headers."""
        with self._lock:
            obj = self._bucket_or_keyerror(bucket).objects[key]
            return {
                "etag": obj.etag,
                "crc": obj.crc,
                "size": len(obj.data),
                "type": obj.object_type,
                "content_type": obj.content_type,
                "headers": dict(obj.headers),
                "last_modified": obj.last_modified,
            }

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(
                k for k in self._bucket_or_keyerror(bucket).objects if k.startswith(prefix)
            )

    def list_uploads(self, bucket: str) -> list[tuple[str, str]]:
        """``(key, upload_id)`` of the multipart uploads still in progress."""
        with self._lock:
            return sorted(
                (u.key, u.upload_id) for u in self._bucket_or_keyerror(bucket).uploads.values()
            )

    def reset_faults(self) -> None:
        self.fail_rate = self.drop_rate = 0.0
        self.fail_next = self.drop_next = 0
        self.fault_ops = None
        self.corrupt_crc = False
        self.delay = 0.0
        self.deny_get.clear()

    def reset_counters(self) -> None:
        with self._stats_lock:
            self.requests.clear()
            self.injected.clear()
            self.request_log.clear()

    def reseed(self, seed: int) -> None:
        with self._stats_lock:
            self.random.seed(seed)

    # ------------------------------------------------------------------ internals

    def _bucket_or_keyerror(self, name: str) -> _Bucket:
        try:
            return self._buckets[name]
        except KeyError:
            raise KeyError(f"no such bucket: {name}") from None

    def _bucket(self, name: str) -> _Bucket:
        try:
            return self._buckets[name]
        except KeyError:
            raise _no_bucket(name) from None

    def _track_connection(self, conn: socket.socket, add: bool) -> None:
        with self._stats_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _new_request_id(self) -> str:
        with self._stats_lock:
            self._request_seq += 1
            seq = self._request_seq
        stamp = int(time.time()) & 0xFFFFFFFF
        return f"{stamp:08X}{seq & 0xFFFFFFFF:08X}{uuid.uuid4().hex[:8].upper()}"

    def _draw_fault(self, op: str) -> str | None:
        with self._stats_lock:
            if self.fault_ops is not None and op not in self.fault_ops:
                return None
            if self.drop_next > 0:
                self.drop_next -= 1
                return "drop"
            if self.fail_next > 0:
                self.fail_next -= 1
                return "fail"
            # Always draw both numbers so that the sequence only depends on the seed.
            drop_draw, fail_draw = self.random.random(), self.random.random()
            if drop_draw < self.drop_rate:
                return "drop"
            if fail_draw < self.fail_rate:
                return "fail"
            return None

    # ------------------------------------------------------------------ request cycle

    def _serve(self, h: _Handler) -> None:
        request_id = self._new_request_id()
        raw_path, _, query = h.path.partition("?")
        segments = raw_path.lstrip("/").split("/", 1)
        bucket = unquote(segments[0])
        key = unquote(segments[1]) if len(segments) > 1 else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = _Request(
            method=h.command,
            path=raw_path,
            bucket=bucket,
            key=key,
            params=params,
            headers=headers,
            request_id=request_id,
            host=headers.get("host", f"{self.host}"),
        )
        op = self._operation(req)
        with self._stats_lock:
            self.requests[op] += 1

        if self.delay:
            time.sleep(self.delay)

        fault = self._draw_fault(op)
        if fault == "drop":
            with self._stats_lock:
                self.injected["drop"] += 1
                self.request_log.append((op, req.method, h.path, None))
            self._drop(h)
            return

        try:
            req.body = self._read_body(h)
        except (ValueError, OSError):
            self._drop(h)
            return

        if fault == "fail":
            with self._stats_lock:
                self.injected["fail"] += 1
                status = self.random.choice(self.fail_statuses)
            if status == 503:
                err = _OSSError(503, "ServiceUnavailable", "Please reduce your request rate.")
            else:
                err = _OSSError(
                    status, "InternalError", "We encountered an internal error. Please try again."
                )
            resp = self._error_response(req, err)
        else:
            try:
                self._authenticate(req)
                self._check_payload(req, op)
                if op == "GetObject" and any(
                    req.bucket == b and req.key.startswith(k) for b, k in self.deny_get
                ):
                    raise _OSSError(403, "AccessDenied", "You have no right to access this object.")
                resp = getattr(self, "_op_" + op)(req)
            except _OSSError as e:
                resp = self._error_response(req, e)
            except _DropConnection:
                self._drop(h)
                return
            except Exception:  # a bug in the fake: answer like OSS would, keep the trace
                self.server_errors.append(traceback.format_exc())
                resp = self._error_response(
                    req,
                    _OSSError(
                        500, "InternalError", "The fake OSS server failed: see server_errors."
                    ),
                )

        with self._stats_lock:
            self.request_log.append((op, req.method, h.path, resp.status))
        self._send(h, req, resp)

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = h.rfile.readline(65537)
                if not line:
                    raise ValueError("connection closed inside chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        trailer = h.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunk = h.rfile.read(size)
                if len(chunk) != size:
                    raise ValueError("short chunk")
                chunks.append(chunk)
                h.rfile.readline()
            return b"".join(chunks)
        length = int(h.headers.get("Content-Length") or 0)
        if length <= 0:
            return b""
        data = h.rfile.read(length)
        if len(data) != length:
            raise ValueError("short body")
        return data

    def _send(self, h: _Handler, req: _Request, resp: _Response) -> None:
        try:
            h.send_response(resp.status)
            h.send_header("x-oss-request-id", req.request_id)
            for name, value in resp.headers.items():
                h.send_header(name, value)
            if req.method == "HEAD":
                length = resp.head_length if resp.head_length is not None else 0
            elif resp.status in (204, 304):
                length = 0
            else:
                length = len(resp.body)
            h.send_header("Content-Length", str(length))
            h.send_header("Connection", "close" if h.close_connection else "keep-alive")
            h.end_headers()
            if req.method != "HEAD" and resp.status not in (204, 304) and resp.body:
                h.wfile.write(resp.body)
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    def _error_response(self, req: _Request, err: _OSSError) -> _Response:
        headers = dict(err.headers)
        if err.status == 304:
            return _Response(304, headers)
        root = ET.Element("Error")
        _sub(root, "Code", err.code)
        _sub(root, "Message", err.message)
        _sub(root, "RequestId", req.request_id)
        _sub(root, "HostId", req.host)
        for tag, text in err.extra.items():
            _sub(root, tag, text)
        body = _xml(root)
        headers["Content-Type"] = "application/xml"
        if req.method == "HEAD":  # no body: OSS puts the error document in x-oss-err
            headers["x-oss-err"] = base64.b64encode(body).decode("ascii")
            return _Response(err.status, headers, b"", head_length=0)
        return _Response(err.status, headers, body)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _operation(req: _Request) -> str:
        p, m = req.params, req.method
        unknown = [k for k in p if k in _V1_SUBRESOURCES and k not in _HANDLED_SUBRESOURCES]
        if not req.bucket:
            return "ListBuckets" if m == "GET" and not unknown else "Unsupported"
        if unknown:
            return "Unsupported"
        if not req.key:
            if m == "PUT":
                return "PutBucket"
            if m == "DELETE":
                return "DeleteBucket"
            if m == "HEAD":
                return "HeadBucket"
            if m == "POST":
                return "DeleteMultipleObjects" if "delete" in p else "Unsupported"
            if m == "GET":
                if "bucketInfo" in p:
                    return "GetBucketInfo"
                if "location" in p:
                    return "GetBucketLocation"
                if "stat" in p:
                    return "GetBucketStat"
                if "uploads" in p:
                    return "ListMultipartUploads"
                return "ListObjectsV2" if p.get("list-type") == "2" else "ListObjects"
            return "Unsupported"
        if m == "PUT":
            if "uploadId" in p or "partNumber" in p:
                return "UploadPartCopy" if "x-oss-copy-source" in req.headers else "UploadPart"
            return "CopyObject" if "x-oss-copy-source" in req.headers else "PutObject"
        if m == "GET":
            return "ListParts" if "uploadId" in p else "GetObject"
        if m == "HEAD":
            return "GetObjectMeta" if "objectMeta" in p else "HeadObject"
        if m == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in p else "DeleteObject"
        if m == "POST":
            if "uploads" in p:
                return "InitiateMultipartUpload"
            if "uploadId" in p:
                return "CompleteMultipartUpload"
            if "append" in p:
                return "AppendObject"
        return "Unsupported"

    # ------------------------------------------------------------------ authentication

    def _authenticate(self, req: _Request) -> None:
        auth = req.headers.get("authorization")
        if auth is None:
            if "OSSAccessKeyId" in req.params and "Signature" in req.params:
                self._verify_v1(req, presigned=True)
            elif req.params.get("x-oss-signature-version") == _V4_ALGORITHM:
                self._verify_v4(req, presigned=True)
            else:
                raise _OSSError(
                    403,
                    "AccessDenied",
                    "You have no right to access this object because of bucket acl.",
                )
        elif auth.startswith("OSS "):
            self._verify_v1(req, presigned=False)
        elif auth.startswith(_V4_ALGORITHM + " "):
            self._verify_v4(req, presigned=False)
        else:
            raise _OSSError(
                400,
                "InvalidArgument",
                "Authorization header is invalid (this fake accepts OSS signature V1 and V4 only).",
                {"ArgumentName": "Authorization", "ArgumentValue": auth.split(" ", 1)[0]},
            )

    def _lookup_secret(self, key_id: str, token: str | None) -> str:
        try:
            secret, expected_token = self._credentials[key_id]
        except KeyError:
            raise _OSSError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                {"OSSAccessKeyId": key_id},
            ) from None
        if expected_token is not None and not token:
            raise _OSSError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records. "
                "The Security Token may be lost to specify that it is a STS Access Id.",
                {"OSSAccessKeyId": key_id},
            )
        if token and (expected_token is None or not hmac.compare_digest(token, expected_token)):
            raise _OSSError(
                403,
                "InvalidAccessKeyId",
                "The security token you provided is invalid.",
                {"OSSAccessKeyId": key_id},
            )
        return secret

    def _check_skew(self, when: float | None, raw: str) -> None:
        if when is None:
            raise _OSSError(403, "AccessDenied", f"Invalid date format: {raw!r}.")
        if self.max_time_skew is not None and abs(time.time() - when) > self.max_time_skew:
            raise _OSSError(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                {"RequestTime": raw, "ServerTime": _iso8601(time.time())},
            )

    def _v1_string_to_sign(self, req: _Request, date: str) -> bytes:
        oss_headers = sorted((k, v) for k, v in req.headers.items() if k.startswith("x-oss-"))
        canon_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        resource = f"/{req.bucket}/{req.key}" if req.bucket else "/"
        sub = sorted((k, v) for k, v in req.params.items() if k in _V1_SUBRESOURCES)
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        parts = [
            req.method,
            req.headers.get("content-md5", ""),
            req.headers.get("content-type", ""),
            date,
            canon_headers + resource,
        ]
        return "\n".join(parts).encode("utf-8")

    def _verify_v1(self, req: _Request, presigned: bool) -> None:
        req.auth_version = "v1"
        if presigned:
            key_id = req.params["OSSAccessKeyId"]
            provided = req.params["Signature"]
            token = req.params.get("security-token")
            date = req.params.get("Expires", "")
            try:
                expires = int(date)
            except ValueError:
                raise _OSSError(
                    403, "AccessDenied", "Invalid Expires in the query string."
                ) from None
            if expires < time.time():
                raise _OSSError(
                    403,
                    "AccessDenied",
                    "Request has expired.",
                    {"Expires": _iso8601(expires), "ServerTime": _iso8601(time.time())},
                )
        else:
            credential = req.headers["authorization"][4:].strip()
            key_id, sep, provided = credential.rpartition(":")
            if not sep:
                raise _OSSError(400, "InvalidArgument", "Authorization header is invalid.")
            token = req.headers.get("x-oss-security-token")
            date = req.headers.get("x-oss-date") or req.headers.get("date", "")
            if not date:
                raise _OSSError(403, "AccessDenied", "OSS authentication requires a valid Date.")
            self._check_skew(_parse_http_date(date), date)
        secret = self._lookup_secret(key_id, token)
        string_to_sign = self._v1_string_to_sign(req, date)
        expected = base64.b64encode(
            hmac.new(secret.encode(), string_to_sign, hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, provided):
            raise _OSSError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                {
                    "OSSAccessKeyId": key_id,
                    "SignatureProvided": provided,
                    "StringToSign": string_to_sign.decode("utf-8"),
                },
            )

    def _verify_v4(self, req: _Request, presigned: bool) -> None:
        req.auth_version = "v4"
        mismatch = "The request signature we calculated does not match the signature you provided."
        if presigned:
            p = req.params
            credential = p.get("x-oss-credential", "")
            provided = p.get("x-oss-signature", "")
            additional = p.get("x-oss-additional-headers", "")
            date_time = p.get("x-oss-date", "")
            token = p.get("x-oss-security-token")
            start = _parse_v4_date(date_time)
            if start is None:
                raise _OSSError(403, "AccessDenied", f"Invalid x-oss-date: {date_time!r}.")
            try:
                expires = int(p.get("x-oss-expires", ""))
            except ValueError:
                raise _OSSError(403, "AccessDenied", "Invalid x-oss-expires.") from None
            if start + expires < time.time():
                raise _OSSError(
                    403,
                    "AccessDenied",
                    "Request has expired.",
                    {"Expires": _iso8601(start + expires), "ServerTime": _iso8601(time.time())},
                )
        else:
            fields: dict[str, str] = {}
            for item in req.headers["authorization"][len(_V4_ALGORITHM) + 1 :].split(","):
                name, _, value = item.strip().partition("=")
                fields[name] = value
            credential = fields.get("Credential", "")
            provided = fields.get("Signature", "")
            additional = fields.get("AdditionalHeaders", "")
            token = req.headers.get("x-oss-security-token")
            date_time = req.headers.get("x-oss-date", "")
            if not date_time:
                raise _OSSError(403, "AccessDenied", "Missing x-oss-date header for signature V4.")
            self._check_skew(_parse_v4_date(date_time), date_time)

        scope_parts = credential.split("/")
        if len(scope_parts) != 5 or not provided:
            raise _OSSError(400, "InvalidArgument", "Invalid Credential in the V4 authorization.")
        key_id, date, region, product, terminator = scope_parts
        secret = self._lookup_secret(key_id, token)
        scope_error = None
        if date != date_time[:8]:
            scope_error = f"Credential date {date!r} does not match x-oss-date {date_time!r}."
        elif region != self.region:
            scope_error = f"Invalid signing region {region!r}: this endpoint is in {self.region!r}."
        elif product != "oss":
            scope_error = f"Invalid signing product {product!r}: expected 'oss'."
        elif terminator != _V4_TERMINATOR:
            scope_error = f"Invalid credential terminator {terminator!r}."
        if scope_error:
            raise _OSSError(
                403,
                "SignatureDoesNotMatch",
                f"{mismatch} {scope_error}",
                {"OSSAccessKeyId": key_id},
            )

        extra_headers = sorted({h.strip().lower() for h in additional.split(";") if h.strip()})
        uri = _v4_quote(f"/{req.bucket}/{req.key}" if req.bucket else "/", keep_slash=True)
        query_items = sorted(
            (_v4_quote(k, False), _v4_quote(v, False))
            for k, v in req.params.items()
            if not (presigned and k == "x-oss-signature")
        )
        canon_query = "&".join(f"{k}={v}" if v else k for k, v in query_items)
        signed = sorted(
            (k, v)
            for k, v in req.headers.items()
            if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in extra_headers
        )
        canon_headers = "".join(f"{k}:{v}\n" for k, v in signed)
        payload = req.headers.get("x-oss-content-sha256", _UNSIGNED_PAYLOAD)
        canonical_request = "\n".join(
            [req.method, uri, canon_query, canon_headers, ";".join(extra_headers), payload]
        )
        scope = f"{date}/{region}/{product}/{terminator}"
        string_to_sign = "\n".join(
            [
                _V4_ALGORITHM,
                date_time,
                scope,
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ]
        )
        signing_key = ("aliyun_v4" + secret).encode("utf-8")
        for part in (date, region, product, terminator):
            signing_key = hmac.new(signing_key, part.encode("utf-8"), hashlib.sha256).digest()
        expected = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, provided):
            raise _OSSError(
                403,
                "SignatureDoesNotMatch",
                mismatch + " Check your key and signing method.",
                {
                    "OSSAccessKeyId": key_id,
                    "SignatureProvided": provided,
                    "StringToSign": string_to_sign,
                    "CanonicalRequest": canonical_request,
                },
            )

    def _check_payload(self, req: _Request, op: str) -> None:
        if req.method not in ("PUT", "POST"):
            return
        md5_header = req.headers.get("content-md5")
        if md5_header is not None:
            expected = base64.b64encode(hashlib.md5(req.body).digest()).decode()
            if md5_header.strip() != expected:
                raise _OSSError(
                    400,
                    "InvalidDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    {"CalculatedDigest": expected, "ProvidedDigest": md5_header},
                )
        sha256 = req.headers.get("x-oss-content-sha256")
        if (
            req.auth_version == "v4"
            and sha256
            and sha256 != _UNSIGNED_PAYLOAD
            and sha256.lower() != hashlib.sha256(req.body).hexdigest()
        ):
            raise _OSSError(
                400,
                "InvalidDigest",
                "The x-oss-content-sha256 you specified did not match what we received.",
            )
        crc_header = req.headers.get("x-oss-hash-crc64ecma")
        if crc_header is not None and op in ("PutObject", "UploadPart", "AppendObject"):
            actual = crc64ecma(req.body)
            if crc_header.strip() != str(actual):
                raise _OSSError(
                    400,
                    "InvalidDigest",
                    "The CRC64 you specified did not match what we received.",
                    {"ClientCRC": crc_header, "ServerCRC": str(actual)},
                )

    # ------------------------------------------------------------------ shared helpers

    def _object_headers(self, obj: _Object, crc_override: bool = True) -> dict[str, str]:
        crc = obj.crc
        if crc_override and self.corrupt_crc:
            with self._stats_lock:
                self.injected["corrupt_crc"] += 1
            crc ^= 0x5A5A
        headers = {
            "Content-Type": obj.content_type,
            "ETag": f'"{obj.etag}"',
            "Last-Modified": _http_date(obj.last_modified),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": obj.object_type,
            "x-oss-storage-class": obj.storage_class,
            "x-oss-hash-crc64ecma": str(crc),
        }
        if obj.object_type == "Normal":
            headers["Content-MD5"] = base64.b64encode(bytes.fromhex(obj.etag)).decode()
        for name, value in obj.headers.items():
            if name == "content-type":
                continue
            if name.startswith("x-oss-meta-"):
                headers[name] = value
            else:
                headers["-".join(w.capitalize() for w in name.split("-"))] = value
        return headers

    @staticmethod
    def _headers_to_store(req: _Request) -> dict[str, str]:
        stored = {
            k: v
            for k, v in req.headers.items()
            if k in _STORED_HEADERS or k.startswith("x-oss-meta-")
        }
        stored.setdefault("content-type", "application/octet-stream")
        return stored

    @staticmethod
    def _check_key(key: str) -> None:
        if len(key.encode("utf-8")) > 1023 or key.startswith(("/", "\\")):
            raise _OSSError(
                400, "InvalidObjectName", "The specified object is not valid.", {"ObjectName": key}
            )

    @staticmethod
    def _check_overwrite(req: _Request, bucket: _Bucket, key: str) -> None:
        if (
            req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
            and key in bucket.objects
        ):
            raise _OSSError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            )

    @staticmethod
    def _check_conditions(req: _Request, obj: _Object, prefix: str = "") -> None:
        # prefix "x-oss-copy-source-" for CopyObject; there every failure is a 412.
        not_modified = 412 if prefix else 304
        h = req.headers
        value = h.get(prefix + "if-match")
        if value is not None and not _etag_matches(value, obj.etag):
            raise _OSSError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
            )
        value = h.get(prefix + "if-unmodified-since")
        when = _parse_http_date(value) if value else None
        if when is not None and obj.last_modified > when:
            raise _OSSError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
            )
        value = h.get(prefix + "if-none-match")
        if value is not None and _etag_matches(value, obj.etag):
            raise _OSSError(
                not_modified, "NotModified" if not prefix else "PreconditionFailed", "Not Modified"
            )
        value = h.get(prefix + "if-modified-since")
        when = _parse_http_date(value) if value else None
        if when is not None and obj.last_modified <= when:
            raise _OSSError(
                not_modified, "NotModified" if not prefix else "PreconditionFailed", "Not Modified"
            )

    @staticmethod
    def _parse_range(value: str, size: int, standard: bool) -> tuple[int, int] | None:
        """``(first, last)`` to send as 206, or None for a 200 with the whole object.

        OSS ignores an invalid or unsatisfiable range unless the request carries
        ``x-oss-range-behavior: standard``; with it, an end past the object is
        clamped and a start past the object is 416 InvalidRange. Only the first
        of several ranges is honoured.
        """
        unsatisfiable = _OSSError(
            416,
            "InvalidRange",
            "The requested range cannot be satisfied",
            {"RangeRequested": value, "ActualObjectSize": str(size)},
            {"Content-Range": f"bytes */{size}"},
        )
        if not value.strip().startswith("bytes="):
            return None
        spec = value.strip()[len("bytes=") :].split(",")[0].strip()
        first_s, sep, last_s = spec.partition("-")
        if not sep:
            return None
        try:
            if not first_s.strip():
                count = int(last_s)
                if count <= 0:
                    return None
                if count > size:
                    if not standard:
                        return None
                    if size == 0:
                        raise unsatisfiable
                    return 0, size - 1
                return size - count, size - 1
            first = int(first_s)
            last = int(last_s) if last_s.strip() else size - 1
        except ValueError:
            return None
        if first < 0 or (last_s.strip() and last < first):
            return None
        if first >= size:
            if standard:
                raise unsatisfiable
            return None
        if last >= size:
            if not standard:
                return None
            last = size - 1
        return first, last

    @staticmethod
    def _int_param(req: _Request, name: str, default: int, low: int, high: int) -> int:
        raw = req.params.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _invalid_argument(f"Argument {name} is not a valid integer.", name, raw) from None
        if not low <= value <= high:
            raise _invalid_argument(f"Argument {name} must be between {low} and {high}.", name, raw)
        return value

    @staticmethod
    def _parse_xml(body: bytes) -> ET.Element:
        try:
            return ET.fromstring(body)
        except ET.ParseError:
            raise _malformed_xml() from None

    def _copy_source(self, req: _Request) -> tuple[_Bucket, str, _Object]:
        source = req.headers["x-oss-copy-source"]
        source, _, query = source.partition("?")
        if "versionId" in dict(parse_qsl(query)):
            raise _OSSError(
                501, "NotImplemented", "Versioned copy sources are not supported by this fake."
            )
        source = unquote(source).lstrip("/")
        src_bucket_name, sep, src_key = source.partition("/")
        if not sep or not src_key:
            raise _invalid_argument(
                "Copy Source must mention the source bucket and key.", "x-oss-copy-source", source
            )
        src_bucket = self._bucket(src_bucket_name)
        obj = src_bucket.objects.get(src_key)
        if obj is None:
            raise _no_key(src_key)
        return src_bucket, src_key, obj

    # ------------------------------------------------------------------ service & bucket ops

    def _op_Unsupported(self, req: _Request) -> _Response:
        raise _OSSError(
            501, "NotImplemented", "This operation is not implemented by the fake OSS server."
        )

    def _owner(self, parent: ET.Element) -> None:
        owner = _sub(parent, "Owner")
        _sub(owner, "ID", _OWNER_ID)
        _sub(owner, "DisplayName", _OWNER_ID)

    def _op_ListBuckets(self, req: _Request) -> _Response:
        prefix = req.params.get("prefix", "")
        marker = req.params.get("marker", "")
        max_keys = self._int_param(req, "max-keys", 100, 1, 1000)
        with self._lock:
            names = sorted(n for n in self._buckets if n.startswith(prefix) and n > marker)
            root = ET.Element("ListAllMyBucketsResult")
            if prefix:
                _sub(root, "Prefix", prefix)
            if marker:
                _sub(root, "Marker", marker)
            _sub(root, "MaxKeys", max_keys)
            truncated = len(names) > max_keys
            _sub(root, "IsTruncated", str(truncated).lower())
            if truncated:
                _sub(root, "NextMarker", names[max_keys - 1])
            self._owner(root)
            buckets = _sub(root, "Buckets")
            for name in names[:max_keys]:
                b = self._buckets[name]
                node = _sub(buckets, "Bucket")
                _sub(node, "CreationDate", _iso8601(b.created))
                _sub(node, "ExtranetEndpoint", f"oss-{self.region}.aliyuncs.com")
                _sub(node, "IntranetEndpoint", f"oss-{self.region}-internal.aliyuncs.com")
                _sub(node, "Location", f"oss-{self.region}")
                _sub(node, "Name", name)
                _sub(node, "Region", self.region)
                _sub(node, "StorageClass", b.storage_class)
        return _xml_response(root)

    def _op_PutBucket(self, req: _Request) -> _Response:
        name = req.bucket
        if not _BUCKET_NAME_RE.match(name):
            raise _OSSError(
                400, "InvalidBucketName", "The specified bucket is not valid.", {"BucketName": name}
            )
        storage_class = "Standard"
        if req.body.strip():
            root = self._parse_xml(req.body)
            for el in root.iter():
                if _local(el.tag) == "StorageClass" and el.text:
                    storage_class = el.text
        with self._lock:
            if name in self._buckets:
                raise _OSSError(
                    409,
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared "
                    "by all users of the system. Please select a different name and try again.",
                    {"BucketName": name},
                )
            self._buckets[name] = _Bucket(
                name,
                int(time.time()),
                acl=req.headers.get("x-oss-acl", "private"),
                storage_class=storage_class,
            )
        return _Response(200, {"Location": f"/{name}"})

    def _op_DeleteBucket(self, req: _Request) -> _Response:
        with self._lock:
            bucket = self._bucket(req.bucket)
            if bucket.objects or bucket.uploads:
                raise _OSSError(
                    409,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty.",
                    {"BucketName": req.bucket},
                )
            del self._buckets[req.bucket]
        return _Response(204)

    def _op_HeadBucket(self, req: _Request) -> _Response:
        with self._lock:
            self._bucket(req.bucket)
        return _Response(200, {"x-oss-bucket-region": self.region}, head_length=0)

    def _op_GetBucketInfo(self, req: _Request) -> _Response:
        with self._lock:
            b = self._bucket(req.bucket)
            root = ET.Element("BucketInfo")
            node = _sub(root, "Bucket")
            _sub(node, "AccessMonitor", "Disabled")
            _sub(node, "CreationDate", _iso8601(b.created))
            _sub(node, "ExtranetEndpoint", f"oss-{self.region}.aliyuncs.com")
            _sub(node, "IntranetEndpoint", f"oss-{self.region}-internal.aliyuncs.com")
            _sub(node, "Location", f"oss-{self.region}")
            _sub(node, "StorageClass", b.storage_class)
            _sub(node, "TransferAcceleration", "Disabled")
            _sub(node, "CrossRegionReplication", "Disabled")
            _sub(node, "DataRedundancyType", "LRS")
            _sub(node, "Name", b.name)
            _sub(node, "ResourceGroupId", "rg-default")
            self._owner(node)
            acl = _sub(node, "AccessControlList")
            _sub(acl, "Grant", b.acl)
            _sub(node, "Comment", "")
            sse = _sub(node, "ServerSideEncryptionRule")
            _sub(sse, "SSEAlgorithm", "None")
        return _xml_response(root)

    def _op_GetBucketLocation(self, req: _Request) -> _Response:
        with self._lock:
            self._bucket(req.bucket)
        root = ET.Element("LocationConstraint")
        root.text = f"oss-{self.region}"
        return _xml_response(root)

    def _op_GetBucketStat(self, req: _Request) -> _Response:
        with self._lock:
            b = self._bucket(req.bucket)
            size = sum(len(o.data) for o in b.objects.values())
            root = ET.Element("BucketStat")
            _sub(root, "Storage", size)
            _sub(root, "ObjectCount", len(b.objects))
            _sub(root, "MultipartUploadCount", len(b.uploads))
            _sub(root, "LiveChannelCount", 0)
            _sub(
                root,
                "LastModifiedTime",
                max((o.last_modified for o in b.objects.values()), default=0),
            )
            _sub(root, "StandardStorage", size)
            _sub(root, "StandardObjectCount", len(b.objects))
        return _xml_response(root)

    # ------------------------------------------------------------------ listing

    @staticmethod
    def _walk(
        keys: list[str], prefix: str, delimiter: str, after: str, limit: int
    ) -> tuple[list[str], list[str], bool, str]:
        """Keys and common prefixes sorting after ``after``.

        Returns ``(keys, common_prefixes, is_truncated, last_entry_returned)``; a
        common prefix counts as one entry and is never repeated on a later page
        because the marker of that page is the prefix itself.
        """
        contents: list[str] = []
        prefixes: list[str] = []
        last = ""
        if limit == 0:
            return contents, prefixes, False, last
        for name in keys:
            if name <= after or not name.startswith(prefix):
                continue
            entry, is_prefix = name, False
            if delimiter:
                idx = name.find(delimiter, len(prefix))
                if idx >= 0:
                    entry, is_prefix = name[: idx + len(delimiter)], True
                    if entry <= after or (prefixes and prefixes[-1] == entry):
                        continue
            if len(contents) + len(prefixes) >= limit:
                return contents, prefixes, True, last
            (prefixes if is_prefix else contents).append(entry)
            last = entry
        return contents, prefixes, False, last

    def _contents_node(
        self, root: ET.Element, key: str, obj: _Object, encode: Any, owner: bool
    ) -> None:
        node = _sub(root, "Contents")
        _sub(node, "Key", encode(key))
        _sub(node, "LastModified", _iso8601(obj.last_modified))
        _sub(node, "ETag", f'"{obj.etag}"')
        _sub(node, "Type", obj.object_type)
        _sub(node, "Size", len(obj.data))
        _sub(node, "StorageClass", obj.storage_class)
        if owner:
            self._owner(node)

    @staticmethod
    def _encoder(req: _Request) -> tuple[bool, Any]:
        encoding = req.params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise _invalid_argument(
                "Invalid Encoding Method specified in Request", "encoding-type", encoding
            )
        if encoding == "url":
            return True, lambda s: quote(s, safe="/")
        return False, lambda s: s

    def _op_ListObjects(self, req: _Request) -> _Response:
        prefix = req.params.get("prefix", "")
        marker = req.params.get("marker", "")
        delimiter = req.params.get("delimiter", "")
        max_keys = self._int_param(req, "max-keys", 100, 0, _MAX_KEYS_LIMIT)
        url, enc = self._encoder(req)
        with self._lock:
            b = self._bucket(req.bucket)
            keys = sorted(b.objects)
            contents, prefixes, truncated, last = self._walk(
                keys, prefix, delimiter, marker, max_keys
            )
            root = ET.Element("ListBucketResult")
            _sub(root, "Name", b.name)
            _sub(root, "Prefix", enc(prefix))
            _sub(root, "Marker", enc(marker))
            _sub(root, "MaxKeys", max_keys)
            _sub(root, "Delimiter", enc(delimiter))
            if url:
                _sub(root, "EncodingType", "url")
            _sub(root, "IsTruncated", str(truncated).lower())
            if truncated:
                _sub(root, "NextMarker", enc(last))
            for key in contents:
                self._contents_node(root, key, b.objects[key], enc, owner=True)
            for p in prefixes:
                _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(p))
        return _xml_response(root)

    def _op_ListObjectsV2(self, req: _Request) -> _Response:
        prefix = req.params.get("prefix", "")
        delimiter = req.params.get("delimiter", "")
        start_after = req.params.get("start-after", "")
        token = req.params.get("continuation-token", "")
        fetch_owner = req.params.get("fetch-owner", "false").lower() == "true"
        max_keys = self._int_param(req, "max-keys", 100, 0, _MAX_KEYS_LIMIT)
        url, enc = self._encoder(req)
        after = start_after
        if token:
            try:
                after = base64.b64decode(token.encode("ascii"), validate=True).decode("utf-8")
            except (ValueError, UnicodeError):
                raise _invalid_argument(
                    "The continuation token provided is incorrect", "continuation-token", token
                ) from None
        with self._lock:
            b = self._bucket(req.bucket)
            keys = sorted(b.objects)
            contents, prefixes, truncated, last = self._walk(
                keys, prefix, delimiter, after, max_keys
            )
            root = ET.Element("ListBucketResult")
            _sub(root, "Name", b.name)
            _sub(root, "Prefix", enc(prefix))
            if start_after:
                _sub(root, "StartAfter", enc(start_after))
            if token:
                _sub(root, "ContinuationToken", quote(token, safe="") if url else token)
            _sub(root, "MaxKeys", max_keys)
            _sub(root, "Delimiter", enc(delimiter))
            if url:
                _sub(root, "EncodingType", "url")
            _sub(root, "IsTruncated", str(truncated).lower())
            if truncated:
                next_token = base64.b64encode(last.encode("utf-8")).decode("ascii")
                _sub(
                    root, "NextContinuationToken", quote(next_token, safe="") if url else next_token
                )
            _sub(root, "KeyCount", len(contents) + len(prefixes))
            for key in contents:
                self._contents_node(root, key, b.objects[key], enc, owner=fetch_owner)
            for p in prefixes:
                _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(p))
        return _xml_response(root)

    def _op_ListMultipartUploads(self, req: _Request) -> _Response:
        prefix = req.params.get("prefix", "")
        key_marker = req.params.get("key-marker", "")
        id_marker = req.params.get("upload-id-marker", "")
        max_uploads = self._int_param(req, "max-uploads", 1000, 1, 1000)
        url, enc = self._encoder(req)
        with self._lock:
            b = self._bucket(req.bucket)
            uploads = sorted(
                (u.key, u.upload_id, u.initiated)
                for u in b.uploads.values()
                if u.key.startswith(prefix)
                and (
                    u.key > key_marker
                    or (u.key == key_marker and id_marker and u.upload_id > id_marker)
                )
            )
        page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
        root = ET.Element("ListMultipartUploadsResult")
        _sub(root, "Bucket", req.bucket)
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "KeyMarker", enc(key_marker))
        _sub(root, "UploadIdMarker", id_marker)
        _sub(root, "NextKeyMarker", enc(page[-1][0]) if truncated else "")
        _sub(root, "NextUploadIdMarker", page[-1][1] if truncated else "")
        _sub(root, "Delimiter", "")
        _sub(root, "Prefix", enc(prefix))
        _sub(root, "MaxUploads", max_uploads)
        _sub(root, "IsTruncated", str(truncated).lower())
        for key, upload_id, initiated in page:
            node = _sub(root, "Upload")
            _sub(node, "Key", enc(key))
            _sub(node, "UploadId", upload_id)
            _sub(node, "StorageClass", "Standard")
            _sub(node, "Initiated", _iso8601(initiated))
        return _xml_response(root)

    # ------------------------------------------------------------------ objects

    def _op_PutObject(self, req: _Request) -> _Response:
        self._check_key(req.key)
        data = req.body
        obj = _Object(
            data,
            oss_etag(data),
            crc64ecma(data),
            int(time.time()),
            "Normal",
            self._headers_to_store(req),
            req.headers.get("x-oss-storage-class", "Standard"),
        )
        with self._lock:
            bucket = self._bucket(req.bucket)
            self._check_overwrite(req, bucket, req.key)
            bucket.objects[req.key] = obj
        return _Response(
            200,
            {
                "ETag": f'"{obj.etag}"',
                "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
                "x-oss-hash-crc64ecma": str(obj.crc),
            },
        )

    def _op_AppendObject(self, req: _Request) -> _Response:
        self._check_key(req.key)
        try:
            position = int(req.params.get("position", ""))
        except ValueError:
            raise _invalid_argument(
                "Position is not valid.", "position", req.params.get("position", "")
            ) from None
        with self._lock:
            bucket = self._bucket(req.bucket)
            obj = bucket.objects.get(req.key)
            if obj is not None and obj.object_type != "Appendable":
                raise _OSSError(409, "ObjectNotAppendable", "The object is not appendable")
            current = len(obj.data) if obj is not None else 0
            if position != current:
                raise _OSSError(
                    409,
                    "PositionNotEqualToLength",
                    "Position is not equal to file length",
                    headers={"x-oss-next-append-position": str(current)},
                )
            if obj is None:
                obj = _Object(b"", oss_etag(b""), 0, 0, "Appendable", self._headers_to_store(req))
                bucket.objects[req.key] = obj
            obj.data += req.body
            obj.etag = oss_etag(obj.data)
            obj.crc = crc64ecma(obj.data)
            obj.last_modified = int(time.time())
            return _Response(
                200,
                {
                    "ETag": f'"{obj.etag}"',
                    "x-oss-next-append-position": str(len(obj.data)),
                    "x-oss-hash-crc64ecma": str(obj.crc),
                },
            )

    def _op_GetObject(self, req: _Request) -> _Response:
        with self._lock:
            obj = self._bucket(req.bucket).objects.get(req.key)
            if obj is None:
                raise _no_key(req.key)
            self._check_conditions(req, obj)
            headers = self._object_headers(obj)
            data = obj.data
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in req.params:
                headers[header] = req.params[param]
        range_header = req.headers.get("range")
        if range_header:
            standard = req.headers.get("x-oss-range-behavior", "").lower() == "standard"
            span = self._parse_range(range_header, len(data), standard)
            if span is not None:
                first, last = span
                headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
                headers.pop("Content-MD5", None)
                return _Response(206, headers, data[first : last + 1])
        return _Response(200, headers, data)

    def _op_HeadObject(self, req: _Request) -> _Response:
        with self._lock:
            obj = self._bucket(req.bucket).objects.get(req.key)
            if obj is None:
                raise _no_key(req.key)
            self._check_conditions(req, obj)
            return _Response(200, self._object_headers(obj), head_length=len(obj.data))

    def _op_GetObjectMeta(self, req: _Request) -> _Response:
        with self._lock:
            obj = self._bucket(req.bucket).objects.get(req.key)
            if obj is None:
                raise _no_key(req.key)
            full = self._object_headers(obj)
            headers = {k: full[k] for k in ("ETag", "Last-Modified", "x-oss-hash-crc64ecma")}
            headers["x-oss-last-access-time"] = full["Last-Modified"]
            return _Response(200, headers, head_length=len(obj.data))

    def _op_DeleteObject(self, req: _Request) -> _Response:
        with self._lock:
            self._bucket(req.bucket).objects.pop(req.key, None)
        return _Response(204)

    def _op_DeleteMultipleObjects(self, req: _Request) -> _Response:
        if "content-md5" not in req.headers:
            raise _OSSError(
                400, "InvalidDigest", "Missing required header for this request: Content-MD5."
            )
        root = self._parse_xml(req.body)
        if _local(root.tag) != "Delete":
            raise _malformed_xml()
        quiet = False
        keys: list[str] = []
        for child in root:
            name = _local(child.tag)
            if name == "Quiet":
                quiet = (child.text or "").strip().lower() == "true"
            elif name == "Object":
                for sub in child:
                    if _local(sub.tag) == "Key":
                        keys.append(sub.text or "")
        if not keys or len(keys) > 1000:
            raise _OSSError(
                400, "MalformedXML", "The number of objects to delete must be between 1 and 1000."
            )
        url, enc = self._encoder(req)
        with self._lock:
            bucket = self._bucket(req.bucket)
            for key in keys:
                bucket.objects.pop(key, None)
        result = ET.Element("DeleteResult")
        if url:
            _sub(result, "EncodingType", "url")
        if not quiet:
            for key in keys:
                _sub(_sub(result, "Deleted"), "Key", enc(key))
        return _xml_response(result)

    def _op_CopyObject(self, req: _Request) -> _Response:
        self._check_key(req.key)
        with self._lock:
            target_bucket = self._bucket(req.bucket)
            _, _, src = self._copy_source(req)
            self._check_conditions(req, src, prefix="x-oss-copy-source-")
            self._check_overwrite(req, target_bucket, req.key)
            directive = req.headers.get("x-oss-metadata-directive", "COPY").upper()
            if directive not in ("COPY", "REPLACE"):
                raise _invalid_argument(
                    "Invalid metadata directive.", "x-oss-metadata-directive", directive
                )
            headers = self._headers_to_store(req) if directive == "REPLACE" else dict(src.headers)
            obj = _Object(
                src.data,
                src.etag,
                src.crc,
                int(time.time()),
                src.object_type if src.object_type != "Appendable" else "Normal",
                headers,
                req.headers.get("x-oss-storage-class", src.storage_class),
            )
            target_bucket.objects[req.key] = obj
        root = ET.Element("CopyObjectResult")
        _sub(root, "ETag", f'"{obj.etag}"')
        _sub(root, "LastModified", _iso8601(obj.last_modified))
        return _xml_response(
            root, headers={"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}
        )

    # ------------------------------------------------------------------ multipart

    def _upload(self, req: _Request) -> tuple[_Bucket, _Upload]:
        bucket = self._bucket(req.bucket)
        upload_id = req.params.get("uploadId", "")
        upload = bucket.uploads.get(upload_id)
        if upload is None or upload.key != req.key:
            raise _no_upload(upload_id)
        return bucket, upload

    def _op_InitiateMultipartUpload(self, req: _Request) -> _Response:
        self._check_key(req.key)
        url, enc = self._encoder(req)
        upload_id = uuid.uuid4().hex.upper()
        with self._lock:
            bucket = self._bucket(req.bucket)
            self._check_overwrite(req, bucket, req.key)
            bucket.uploads[upload_id] = _Upload(
                req.key,
                upload_id,
                int(time.time()),
                self._headers_to_store(req),
                req.headers.get("x-oss-storage-class", "Standard"),
            )
        root = ET.Element("InitiateMultipartUploadResult")
        _sub(root, "Bucket", req.bucket)
        _sub(root, "Key", enc(req.key))
        _sub(root, "UploadId", upload_id)
        if url:
            _sub(root, "EncodingType", "url")
        return _xml_response(root)

    def _part_number(self, req: _Request) -> int:
        raw = req.params.get("partNumber", "")
        try:
            number = int(raw)
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise _invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive.", "partNumber", raw
            )
        return number

    def _op_UploadPart(self, req: _Request) -> _Response:
        number = self._part_number(req)
        data = req.body
        part = _Part(data, oss_etag(data), crc64ecma(data), int(time.time()))
        with self._lock:
            _, upload = self._upload(req)
            upload.parts[number] = part
        return _Response(
            200,
            {
                "ETag": f'"{part.etag}"',
                "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
                "x-oss-hash-crc64ecma": str(part.crc),
            },
        )

    def _op_UploadPartCopy(self, req: _Request) -> _Response:
        number = self._part_number(req)
        with self._lock:
            _, upload = self._upload(req)
            _, _, src = self._copy_source(req)
            self._check_conditions(req, src, prefix="x-oss-copy-source-")
            data = src.data
            range_header = req.headers.get("x-oss-copy-source-range")
            if range_header:
                span = self._parse_range(range_header, len(data), standard=True)
                if span is not None:
                    data = data[span[0] : span[1] + 1]
            part = _Part(data, oss_etag(data), crc64ecma(data), int(time.time()))
            upload.parts[number] = part
        root = ET.Element("CopyPartResult")
        _sub(root, "LastModified", _iso8601(part.last_modified))
        _sub(root, "ETag", f'"{part.etag}"')
        return _xml_response(
            root, headers={"ETag": f'"{part.etag}"', "x-oss-hash-crc64ecma": str(part.crc)}
        )

    def _op_ListParts(self, req: _Request) -> _Response:
        marker = self._int_param(req, "part-number-marker", 0, 0, 10000)
        max_parts = self._int_param(req, "max-parts", 1000, 1, 1000)
        url, enc = self._encoder(req)
        with self._lock:
            _, upload = self._upload(req)
            numbers = sorted(n for n in upload.parts if n > marker)
            page, truncated = numbers[:max_parts], len(numbers) > max_parts
            root = ET.Element("ListPartsResult")
            _sub(root, "Bucket", req.bucket)
            if url:
                _sub(root, "EncodingType", "url")
            _sub(root, "Key", enc(req.key))
            _sub(root, "UploadId", upload.upload_id)
            _sub(root, "StorageClass", upload.storage_class)
            _sub(root, "PartNumberMarker", marker)
            _sub(root, "NextPartNumberMarker", page[-1] if page else marker)
            _sub(root, "MaxParts", max_parts)
            _sub(root, "IsTruncated", str(truncated).lower())
            for n in page:
                part = upload.parts[n]
                node = _sub(root, "Part")
                _sub(node, "PartNumber", n)
                _sub(node, "LastModified", _iso8601(part.last_modified))
                _sub(node, "ETag", f'"{part.etag}"')
                _sub(node, "HashCrc64ecma", part.crc)
                _sub(node, "Size", len(part.data))
        return _xml_response(root)

    def _op_CompleteMultipartUpload(self, req: _Request) -> _Response:
        url, enc = self._encoder(req)
        complete_all = req.headers.get("x-oss-complete-all", "").lower() == "yes"
        wanted: list[tuple[int, str]] = []
        if complete_all:
            if req.body.strip():
                raise _invalid_argument(
                    "Should not specify parts list when x-oss-complete-all is yes.",
                    "x-oss-complete-all",
                    "yes",
                )
        else:
            root = self._parse_xml(req.body)
            for node in root:
                if _local(node.tag) != "Part":
                    continue
                fields = {_local(c.tag): (c.text or "").strip() for c in node}
                try:
                    wanted.append((int(fields["PartNumber"]), fields["ETag"].strip('"').upper()))
                except (KeyError, ValueError):
                    raise _malformed_xml() from None
            if not wanted:
                raise _OSSError(
                    400, "MalformedXML", "The XML you provided did not contain any Part."
                )
        with self._lock:
            bucket, upload = self._upload(req)
            if complete_all:
                wanted = [(n, upload.parts[n].etag) for n in sorted(upload.parts)]
                if not wanted:
                    raise _OSSError(400, "InvalidPart", "No part has been uploaded.")
            numbers = [n for n, _ in wanted]
            if any(b <= a for a, b in itertools.pairwise(numbers)):
                raise _OSSError(
                    400, "InvalidPartOrder", "The list of parts was not in ascending order."
                )
            parts: list[_Part] = []
            for n, etag in wanted:
                part = upload.parts.get(n)
                if part is None or part.etag != etag:
                    raise _OSSError(
                        400,
                        "InvalidPart",
                        "One or more of the specified parts could not be found or the specified "
                        "entity tag might not have matched the part's entity tag.",
                        {"PartNumber": str(n), "ETag": etag},
                    )
                parts.append(part)
            for (n, _), part in zip(wanted[:-1], parts[:-1], strict=True):
                if len(part.data) < self.min_part_size:
                    raise _OSSError(
                        400,
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size.",
                        {"PartNumber": str(n), "MinSizeAllowed": str(self.min_part_size)},
                    )
            self._check_overwrite(req, bucket, req.key)
            data = b"".join(p.data for p in parts)
            obj = _Object(
                data,
                multipart_etag(p.etag for p in parts),
                crc64ecma(data),
                int(time.time()),
                "Multipart",
                dict(upload.headers),
                upload.storage_class,
            )
            bucket.objects[req.key] = obj
            del bucket.uploads[upload.upload_id]
        root = ET.Element("CompleteMultipartUploadResult")
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "Location", f"http://{req.host}/{req.bucket}/{quote(req.key, safe='/')}")
        _sub(root, "Bucket", req.bucket)
        _sub(root, "Key", enc(req.key))
        _sub(root, "ETag", f'"{obj.etag}"')
        return _xml_response(
            root, headers={"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}
        )

    def _op_AbortMultipartUpload(self, req: _Request) -> _Response:
        with self._lock:
            bucket, upload = self._upload(req)
            del bucket.uploads[upload.upload_id]
        return _Response(204)
