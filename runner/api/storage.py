"""Object storage as `runner oss` shows it: what lies below a prefix, copies one way or the
other (a folder or prefix whole, in parallel, verified), an object's bytes. Any store URI
works (oss://, file). A store's error is a UserError here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from runner.api.results import Copied, ObjectList
from runner.errors import UserError
from runner.stores import StoreError, is_remote, stage_input, store_for, upload_dir

__all__ = ["copy", "object_bytes", "objects"]

_T = TypeVar("_T")


def _asked(what: Callable[[], _T]) -> _T:
    try:
        return what()
    except StoreError as e:
        raise UserError(str(e)) from None


def objects(uri: str) -> ObjectList:
    """The objects below prefix `uri`, or the one object `uri` names."""
    store = store_for(uri)
    found = _asked(lambda: store.list(uri if uri.endswith("/") else uri + "/"))
    if not found and not uri.endswith("/"):
        one = _asked(lambda: store.stat(uri))
        found = [one] if one else []
    return ObjectList(tuple(found))


def copy(src: str, dest: str) -> Copied:
    """Copy between a local path and a URI (one of each); a folder or prefix goes whole."""
    if is_remote(src) and not is_remote(dest):
        target = Path(dest)
        if src.endswith("/"):
            n = _asked(lambda: stage_input(src, target, read_only=False)).fetched
        else:
            if target.is_dir():
                target = target / src.rstrip("/").rsplit("/", 1)[-1]
            _asked(lambda: store_for(src).get(src, target))
            n = 1
        return Copied(n, "object", str(target))
    if is_remote(dest) and not is_remote(src):
        path = Path(src)
        if path.is_dir():
            n = _asked(lambda: upload_dir(path, dest))
        elif path.is_file():
            key = dest + path.name if dest.endswith("/") else dest
            _asked(lambda: store_for(key).put(path, key))
            n = 1
        else:
            raise UserError(f"{src}: no such file or folder")
        return Copied(n, "file", dest)
    raise UserError("copy between a local path and a URI (one of each)")


def object_bytes(uri: str) -> Iterator[bytes]:
    """An object's bytes, a block at a time (fetched whole first, and verified)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "object"
        _asked(lambda: store_for(uri).get(uri, target))
        with target.open("rb") as f:
            yield from iter(lambda: f.read(1 << 16), b"")
