"""Object stores: where inputs come from and outputs go (`oss://bucket/prefix/`, local paths).

A store plugin registers under `runner.stores` with the URI scheme as its name and implements
`runner.contracts.Store`. The core stages with it: a remote input is downloaded (in parallel,
verified) into a cache keyed by URI and object version, so unchanged data is never fetched
twice, and the command sees a local folder. Fingerprints of remote inputs are their objects'
versions (ETag, CRC-64), so `runner plan` reruns a task exactly when an input object changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat as statmod
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from runner import plugins
from runner.contracts.store import ObjectInfo, Store, StoreError
from runner.errors import UserError

__all__ = [
    "ObjectInfo",
    "Store",
    "StoreError",
    "cache_path",
    "check_readable",
    "check_writable",
    "input_signature",
    "is_remote",
    "split_glob",
    "stage_input",
    "store_for",
    "upload_dir",
]

WORKERS = 8  # transfers at once: object stores answer many requests better than one big one


def scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else "file"


def is_remote(value: str) -> bool:
    """A URI a store must fetch (anything but a local path or file://)."""
    return "://" in value and scheme(value) != "file"


_STORES: dict[str, Store] = {}


def store_for(uri: str) -> Store:
    """The store for `uri`'s scheme (one instance per process)."""
    name = scheme(uri)
    if name not in _STORES:
        if name not in plugins.available("store"):
            raise UserError(
                f"no store plugin handles {name}:// URIs ({uri}); "
                "install the package that provides it, then check `runner plugins`"
            )
        _STORES[name] = plugins.load("store", name)()
    return _STORES[name]


class NoSuchInput(StoreError):
    """An input URI names neither an object nor a non-empty prefix."""


# the first object of the last listing of each input URI: what `check_readable` reads
_FIRST: dict[str, str] = {}


def _listing(uri: str) -> tuple[bool, list[ObjectInfo]]:
    """(is a prefix, its objects) for an input URI: an object, or everything below a prefix."""
    store = store_for(uri)
    if not uri.endswith("/"):
        info = store.stat(uri)
        if info is not None:
            _FIRST[uri] = uri
            return False, [info]
    base = uri if uri.endswith("/") else uri + "/"
    objects = store.list(base)
    if not objects:
        raise NoSuchInput(f"{uri}: no such object or prefix")
    _FIRST[uri] = base + objects[0].key
    return True, objects


def _signature(objects: list[ObjectInfo]) -> str:
    text = json.dumps(sorted((o.key, o.size, o.etag, o.crc64) for o in objects))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_signature(uri: str) -> str:
    """What decides whether a remote input changed: every object's key, size and version."""
    return _signature(_listing(uri)[1])


def check_readable(uri: str) -> None:
    """Raise StoreError unless the input `uri` exists and its (first) object can be read. Uses
    the listing `input_signature` just made, when there is one."""
    first = _FIRST.get(uri)
    if first is None:
        _listing(uri)
        first = _FIRST[uri]
    store_for(first).read_probe(first)


def cache_path(uri: str, cache_dir: Path) -> Path:
    """Where a remote input is kept locally; the command sees this path. An object keeps its
    file name; a prefix is a folder."""
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "input"
    return cache_dir / digest / name


class Staged(NamedTuple):
    fetched: int  # objects downloaded
    cached: int  # objects already there, unchanged
    signature: str  # the input's version, as `input_signature` gives it


def stage_input(
    uri: str,
    local: Path,
    *,
    workers: int = WORKERS,
    progress: Callable[[int, int], None] | None = None,
    read_only: bool = True,
) -> Staged:
    """Make `local` hold what `uri` holds: fetch only objects whose version changed since the
    last staging, in parallel, each written whole and verified; remove what is gone. Files are
    read-only (unless `read_only` is false). Returns how many objects were fetched and how
    many were already there, and the input's signature as this staging's listing saw it."""
    store = store_for(uri)
    is_prefix, objects = _listing(uri)
    existed = local.exists()
    manifest_file = local.parent / f".{local.name}.versions.json"
    try:
        known: dict[str, str] = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        known = {}
    base = uri if uri.endswith("/") else uri + "/"
    wanted: dict[str, tuple[str, Path]] = {}
    for o in objects:
        target = local / o.key if is_prefix else local
        source = base + o.key if is_prefix else uri
        wanted[o.key] = (source, target)
    if is_prefix and local.is_file():
        local.unlink()
    todo = []
    for o in objects:
        source, target = wanted[o.key]
        version = f"{o.size}:{o.etag}:{o.crc64}"
        if known.get(o.key) == version and target.is_file() and target.stat().st_size == o.size:
            continue
        todo.append((o, source, target, version))
    fetched: dict[str, str] = {}

    for folder in sorted({item[2].parent for item in todo}):
        folder.mkdir(parents=True, exist_ok=True)

    done = 0

    def placed(i: int) -> None:
        nonlocal done
        o, _, target, version = todo[i]
        if read_only:
            target.chmod(0o444)
        fetched[o.key] = version
        done += 1
        if progress:
            progress(done, len(todo))

    # the store's own way to fetch many, or (StoreBase's) `get` in a pool of threads; `get`
    # replaces a read-only file as well (a rename)
    store.get_many([(s, t, o.size) for o, s, t, _ in todo], workers=workers, each=placed)
    if is_prefix and existed:
        # objects deleted from the prefix leave the local copy too
        for path in sorted(local.rglob("*"), reverse=True):
            rel = path.relative_to(local).as_posix()
            if path.is_file() and rel not in wanted:
                path.chmod(0o644)
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    versions = {k: v for k, v in known.items() if k in wanted}
    versions.update(fetched)
    manifest_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(versions, sort_keys=True))
    os.replace(tmp, manifest_file)
    return Staged(len(todo), len(objects) - len(todo), _signature(objects))


def check_writable(uri: str) -> None:
    """Raise StoreError unless an object can be written below `uri` (a probe, then removed)."""
    prefix, _ = split_glob(uri)
    base = prefix if prefix.endswith("/") else prefix + "/"
    probe = f"{base}.runner-write-check-{os.getpid()}-{os.urandom(4).hex()}"
    store = store_for(probe)
    with tempfile.NamedTemporaryFile() as empty:
        store.put(Path(empty.name), probe)
    store.delete(probe)


def split_glob(uri: str) -> tuple[str, str | None]:
    """`oss://b/out/*.png` -> (`oss://b/out/`, `*.png`): an output may name a glob of files
    (as Cromwell's glob() does); without one, everything is stored."""
    head, _, last = uri.rpartition("/")
    if head and any(c in last for c in "*?["):
        return head + "/", last
    return uri, None


def upload_dir(local: Path, uri: str, *, workers: int = WORKERS) -> int:
    """Upload every file below `local` (those matching the URI's glob, if it ends in one) to
    the URI + its relative path, in parallel, each verified by the store; returns how many.
    The first failure is raised."""
    uri, pattern = split_glob(uri)
    store = store_for(uri)
    base = uri if uri.endswith("/") else uri + "/"
    files = sorted(
        p
        for p in (local.glob(pattern) if pattern else local.rglob("*"))
        if p.is_file() and not p.relative_to(local).as_posix().startswith(".")
    )

    def send(path: Path) -> None:
        store.put(path, base + path.relative_to(local).as_posix())

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(send, files))
    return len(files)


def copy_verified(src: Path, dest: Path) -> str:
    """Copy a local file whole (temporary name, then rename) and return its MD5; the copy is
    read back and compared."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    if tmp.exists():
        tmp.unlink()
    shutil.copyfile(src, tmp)
    digest, again = _md5(src), _md5(tmp)
    if digest != again:
        tmp.unlink()
        raise StoreError(f"{dest}: the copy differs from {src} (checksum mismatch)")
    if dest.exists() and not os.access(dest, os.W_OK):
        dest.chmod(dest.stat().st_mode | statmod.S_IWUSR)
    os.replace(tmp, dest)
    return digest


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
