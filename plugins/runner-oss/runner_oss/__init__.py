"""The `oss` store: `oss://bucket/key` on Alibaba Cloud OSS, through oss2.

Credentials come from the environment (`OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET`,
optionally `OSS_SESSION_TOKEN`) or from a credentials file, `$RUNNER_OSS_CREDENTIALS` or
`~/.config/runner/oss-credentials`, which must be readable by its owner only (mode 0600):

    access_key_id = LTAI...
    access_key_secret = ...
    endpoint = https://oss-cn-hangzhou.aliyuncs.com
    region = cn-hangzhou               # with a region, requests are signed with V4

    [bucket my-renders]                # per-bucket settings win
    endpoint = https://oss-eu-central-1.aliyuncs.com
    region = eu-central-1

`OSS_ENDPOINT` and `OSS_REGION` give the defaults. Every download and upload is checked
against the CRC-64 OSS computes; a mismatch is an error, never a silently bad file. Messages
name the URI and OSS's error code, never a key.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import crcmod
import oss2
from oss2.credentials import StaticCredentialsProvider
from oss2.exceptions import NoSuchKey, OssError

from runner.contracts import ObjectInfo, StoreBase, StoreError, UserError
from runner_oss.lean import LeanClient

__all__ = ["OSSStore", "load_settings", "split_uri"]

T = TypeVar("T")

ATTEMPTS = 8  # per request: 5xx, dropped connections and CRC mismatches are retried
MULTIPART_THRESHOLD = 32 << 20
PART_SIZE = 8 << 20
THREADS = 4
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

# CRC-64/ECMA-182 as OSS computes it. Made once: oss2 builds the function's table again (in
# Python) for every request it checks, which costs more CPU than a small request itself.
_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


def split_uri(uri: str) -> tuple[str, str]:
    """`oss://bucket/key` -> (bucket, key)."""
    if not uri.startswith("oss://"):
        raise StoreError(f"{uri}: not an oss:// URI")
    bucket, _, key = uri[len("oss://") :].partition("/")
    if not bucket:
        raise StoreError(f"{uri}: no bucket name (write oss://BUCKET/KEY)")
    return bucket, key


def _parse_file(path: Path) -> dict[str, dict[str, str]]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            f"{path}: credentials file readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    sections: dict[str, dict[str, str]] = {"": {}}
    current = sections[""]
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            words = line[1:-1].split()
            if len(words) != 2 or words[0] != "bucket":
                raise UserError(f"{path}:{number}: expected '[bucket NAME]'")
            current = sections.setdefault(words[1], {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UserError(f"{path}:{number}: expected 'name = value'")
        current[key.strip()] = value.strip()
    return sections


def load_settings() -> dict[str, dict[str, str]]:
    """Settings by bucket ("" = defaults): the credentials file, then the environment."""
    path = Path(
        os.environ.get("RUNNER_OSS_CREDENTIALS")
        or Path.home() / ".config" / "runner" / "oss-credentials"
    )
    sections = _parse_file(path) if path.exists() else {"": {}}
    defaults = sections[""]
    for name, var in (
        ("access_key_id", "OSS_ACCESS_KEY_ID"),
        ("access_key_secret", "OSS_ACCESS_KEY_SECRET"),
        ("security_token", "OSS_SESSION_TOKEN"),
        ("endpoint", "OSS_ENDPOINT"),
        ("region", "OSS_REGION"),
    ):
        if os.environ.get(var):
            defaults[name] = os.environ[var]
    return sections


def _transient(e: Exception) -> bool:
    """Worth another try: the service or the network, not the request."""
    if isinstance(e, (oss2.exceptions.RequestError, oss2.exceptions.InconsistentError)):
        return True
    if isinstance(e, OssError):
        return e.status >= 500 or e.status in (408, 429)
    # EOFError: asyncio's IncompleteReadError, a connection closed halfway
    transient = (ConnectionError, TimeoutError, EOFError, StoreError, http.client.HTTPException)
    return isinstance(e, transient)


def _retry(what: Callable[[], T]) -> T:
    """`what()`, again after a short, growing pause while it fails for a passing reason."""
    for attempt in range(ATTEMPTS):
        try:
            return what()
        except Exception as e:
            if attempt == ATTEMPTS - 1 or not _transient(e):
                raise
            time.sleep(_pause(attempt))
    raise AssertionError("unreachable")


def _pause(attempt: int) -> float:
    """Seconds to wait before trying again after `attempt` failures (counted from 0)."""
    return min(0.05 * 2**attempt, 1.0)


def _checked_crc(uri: str, data: bytes, headers: Any) -> str:
    """The CRC-64 the server sent for a downloaded body, once `data` matches it."""
    crc = headers.get("x-oss-hash-crc64ecma")
    if crc is None:
        raise StoreError(f"{uri}: the server sent no CRC-64 to check the download")
    if str(_crc64(data)) != crc:
        raise StoreError(f"{uri}: the download's CRC-64 does not match the object's")
    return str(crc)


@contextmanager
def _as_store_error(uri: str, mismatch: str = "a CRC-64 mismatch") -> Iterator[None]:
    """oss2's and the network's exceptions (after the retries) as a StoreError that names the
    URI and OSS's error code, never a key; `mismatch` says what a CRC-64 mismatch means."""
    try:
        yield
    except StoreError:
        raise
    except oss2.exceptions.InconsistentError:
        raise StoreError(f"{uri}: {mismatch}") from None
    except Exception as e:
        raise StoreError(f"{uri}: {_why(e)}") from None


def _why(e: Exception) -> str:
    """OSS's error code and message: no request headers, so no credentials."""
    if isinstance(e, OssError):
        code = e.code or f"HTTP {e.status}"
        return f"{code}: {e.message}" if e.message else code
    return type(e).__name__ + (f": {e}" if str(e) else "")


class OSSStore(StoreBase):
    """Objects in OSS buckets; a prefix is every key below it."""

    def __init__(self) -> None:
        self._settings = load_settings()
        self._buckets: dict[str, tuple[oss2.Bucket, oss2.Bucket]] = {}
        self._lean: dict[str, LeanClient | None] = {}
        self._lock = threading.Lock()

    def _bucket(self, name: str) -> oss2.Bucket:
        """The bucket for small requests: CRC-64s are checked here, with `_crc64`."""
        return self._buckets_for(name)[0]

    def _checked_bucket(self, name: str) -> oss2.Bucket:
        """The bucket for resumable transfers, where oss2 checks every part's CRC-64."""
        return self._buckets_for(name)[1]

    def _small(self, name: str) -> LeanClient | None:
        """The lean path for whole small objects; None where a proxy is configured (oss2
        and requests know how to use it)."""
        self._buckets_for(name)
        return self._lean[name]

    def _buckets_for(self, name: str) -> tuple[oss2.Bucket, oss2.Bucket]:
        with self._lock:
            if name not in self._buckets:
                conf = {**self._settings[""], **self._settings.get(name, {})}
                key_id, secret = conf.get("access_key_id"), conf.get("access_key_secret")
                if not key_id or not secret:
                    raise UserError(
                        f"no OSS credentials for bucket {name!r}: set OSS_ACCESS_KEY_ID and "
                        "OSS_ACCESS_KEY_SECRET, or write a credentials file (see `runner oss`)"
                    )
                endpoint = conf.get("endpoint")
                if not endpoint:
                    raise UserError(
                        f"no OSS endpoint for bucket {name!r}: set OSS_ENDPOINT "
                        "(e.g. https://oss-cn-hangzhou.aliyuncs.com)"
                    )
                provider = StaticCredentialsProvider(key_id, secret, conf.get("security_token", ""))
                region = conf.get("region")
                auth: Any = oss2.ProviderAuthV4(provider) if region else oss2.ProviderAuth(provider)
                session = oss2.Session()
                proxied = any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARS)
                if not proxied:
                    # no proxy to honour: requests would search the environment for one on
                    # every request (a third of a small request's CPU)
                    session.session.trust_env = False
                plain, checked = (
                    oss2.Bucket(
                        auth, endpoint, name, region=region, enable_crc=crc,
                        connect_timeout=30, session=session,
                    )
                    for crc in (False, True)
                )  # fmt: skip
                self._buckets[name] = (plain, checked)
                self._lean[name] = None if proxied else LeanClient(plain)
            return self._buckets[name]

    def stat(self, uri: str) -> ObjectInfo | None:
        name, key = split_uri(uri)
        if not key or key.endswith("/"):
            return None
        try:
            bucket = self._bucket(name)
            meta = _retry(lambda: bucket.head_object(key))
        except NoSuchKey:
            return None
        except OssError as e:
            if e.status == 404:
                return None
            raise StoreError(f"{uri}: {_why(e)}") from None
        crc = meta.headers.get("x-oss-hash-crc64ecma")
        return ObjectInfo(key, meta.content_length or 0, meta.etag or "", crc)

    def list(self, uri: str) -> list[ObjectInfo]:
        name, prefix = split_uri(uri)
        bucket = self._bucket(name)
        with _as_store_error(uri):
            return _retry(
                lambda: [
                    ObjectInfo(o.key[len(prefix) :], o.size, o.etag)
                    for o in oss2.ObjectIteratorV2(bucket, prefix=prefix)
                    if not o.key.endswith("/")
                ]
            )

    def get(self, uri: str, dest: Path, size: int | None = None) -> ObjectInfo:
        name, key = split_uri(uri)
        bucket = self._bucket(name)
        tmp = dest.with_name(f".{dest.name}.part")

        def once() -> ObjectInfo:
            known = size if size is not None else bucket.head_object(key).content_length or 0
            if known >= MULTIPART_THRESHOLD:
                # big objects in ranges over several connections, resumable; oss2 compares
                # each range's CRC-64, then the whole object's
                oss2.resumable_download(
                    self._checked_bucket(name),
                    key,
                    str(tmp),
                    multiget_threshold=MULTIPART_THRESHOLD,
                    part_size=PART_SIZE,
                    num_threads=THREADS,
                    store=oss2.ResumableDownloadStore(root=str(_checkpoints())),
                )
                result = bucket.head_object(key)
                crc = result.headers.get("x-oss-hash-crc64ecma")
                if crc is None:
                    raise StoreError(f"{uri}: the server sent no CRC-64 to check the download")
                return ObjectInfo(key, tmp.stat().st_size, result.etag or "", crc)
            lean = self._small(name)
            if lean is not None:
                headers, data = lean.get(key)
                etag = headers.get("etag", "").strip('"')
            else:
                got = bucket.get_object(key)
                data, headers, etag = got.read(), got.headers, got.etag or ""
            crc = _checked_crc(uri, data, headers)
            tmp.write_bytes(data)
            return ObjectInfo(key, len(data), etag, crc)

        try:
            with _as_store_error(uri, "the download's CRC-64 does not match the object's"):
                info = _retry(once)
            os.replace(tmp, dest)
            return info
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get_many(
        self,
        items: list[tuple[str, Path, int | None]],
        *,
        workers: int,
        each: Callable[[int], None] | None = None,
    ) -> None:
        """`get` for many objects at once. Small ones go over `workers` connections driven
        by one event loop in this thread (threads would spend their time taking turns at the
        interpreter lock); big ones, and everything where a proxy is set, through `get` in a
        pool of threads. `each(i)` after items[i] is in place. The first failure is raised."""
        small: list[int] = []
        others: list[int] = []
        for i, (uri, _, size) in enumerate(items):
            name, _ = split_uri(uri)
            if size is not None and size < MULTIPART_THRESHOLD and self._small(name):
                small.append(i)
            else:
                others.append(i)

        def one(i: int) -> None:
            uri, dest, size = items[i]
            self.get(uri, dest, size)
            if each:
                each(i)

        if others:  # big ones (each in parallel ranges) and proxied ones, several at once
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(others)))) as pool:
                list(pool.map(one, others))
        if small:
            try:
                asyncio.run(self._get_small_many(items, small, workers, each))
            except ExceptionGroup as group:  # the first failure, as `get` would raise it
                raise group.exceptions[0] from None

    async def _get_small_many(
        self,
        items: list[tuple[str, Path, int | None]],
        todo: list[int],
        workers: int,
        each: Callable[[int], None] | None,
    ) -> None:
        queue = collections.deque(todo)

        async def worker() -> None:
            conn: list[Any] = []
            while queue:
                i = queue.popleft()
                uri, dest, _ = items[i]
                await self._get_small(uri, dest, conn)
                if each:
                    each(i)
            if conn:
                conn[1].close()

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(workers, len(todo)))):
                group.create_task(worker())

    async def _get_small(self, uri: str, dest: Path, conn: list[Any]) -> None:
        name, key = split_uri(uri)
        lean = self._small(name)
        assert lean is not None
        tmp = dest.with_name(f".{dest.name}.part")
        for attempt in range(ATTEMPTS):
            try:
                headers, data = await lean.request_async(conn, "GET", key)
                _checked_crc(uri, data, headers)
                tmp.write_bytes(data)
                os.replace(tmp, dest)
                return
            except Exception as e:
                tmp.unlink(missing_ok=True)
                if attempt == ATTEMPTS - 1 or not _transient(e):
                    if isinstance(e, StoreError):
                        raise
                    raise StoreError(f"{uri}: {_why(e)}") from None
                await asyncio.sleep(_pause(attempt))

    def read_probe(self, uri: str) -> None:
        """Read the object's first byte: listing and reading are separate permissions."""
        name, key = split_uri(uri)
        bucket = self._bucket(name)

        def once() -> None:
            bucket.get_object(key, byte_range=(0, 0)).read()

        with _as_store_error(uri):
            _retry(once)

    def put(self, src: Path, uri: str) -> ObjectInfo:
        name, key = split_uri(uri)
        bucket = self._bucket(name)
        if src.stat().st_size < MULTIPART_THRESHOLD:
            return self._put_small(bucket, self._small(name), src, uri, key)
        # the whole file's CRC-64 (oss2 checks each part, not the assembled object), computed
        # while the parts travel
        with ThreadPoolExecutor(max_workers=1) as pool:
            local_crc = pool.submit(_file_crc, src)
            return self._put_big(bucket, src, uri, key, local_crc)

    def _put_big(
        self, bucket: oss2.Bucket, src: Path, uri: str, key: str, local_crc: Future[int]
    ) -> ObjectInfo:
        checked = self._checked_bucket(bucket.bucket_name)
        with _as_store_error(uri, f"the upload's CRC-64 does not match {src}"):
            result = _retry(
                lambda: oss2.resumable_upload(
                    checked,
                    key,
                    str(src),
                    multipart_threshold=MULTIPART_THRESHOLD,
                    part_size=PART_SIZE,
                    num_threads=THREADS,
                    store=oss2.ResumableStore(root=str(_checkpoints())),
                )
            )
            local = str(local_crc.result())
            remote = result.headers.get("x-oss-hash-crc64ecma") if result.headers else None
            if remote is None:
                info = self.stat(uri)
                remote = info.crc64 if info else None
            if remote != local:
                raise StoreError(f"{uri}: the uploaded object's CRC-64 does not match {src}")
            return ObjectInfo(key, src.stat().st_size, result.etag or "", remote)

    @staticmethod
    def _put_small(
        bucket: oss2.Bucket, lean: LeanClient | None, src: Path, uri: str, key: str
    ) -> ObjectInfo:
        """One request; the CRC-64 the server computed must be the file's."""
        data = src.read_bytes()
        local = str(_crc64(data))

        def once() -> ObjectInfo:
            if lean is not None:
                headers: Any = lean.put(key, data)
                etag = headers.get("etag", "").strip('"')
            else:
                result = bucket.put_object(key, data)
                headers, etag = result.headers, result.etag or ""
            crc = headers.get("x-oss-hash-crc64ecma")
            if crc is None:
                raise StoreError(f"{uri}: the server sent no CRC-64 to check the upload with")
            if crc != local:
                raise StoreError(f"{uri}: the upload's CRC-64 does not match {src}")
            return ObjectInfo(key, len(data), etag, crc)

        with _as_store_error(uri):
            return _retry(once)

    def delete(self, uri: str) -> None:
        name, key = split_uri(uri)
        bucket = self._bucket(name)
        with _as_store_error(uri):
            _retry(lambda: bucket.delete_object(key))


def _file_crc(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = _crc64(block, crc)
    return crc


def _checkpoints() -> Path:
    """Where oss2 keeps what a resumable transfer has done, so a retry sends only the rest."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runner" / "oss"
