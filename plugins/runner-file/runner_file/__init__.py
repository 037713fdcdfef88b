"""The built-in `file` store: local paths and `file://` URIs, for inputs and outputs that live
on this machine or a shared file system. Copies are written whole (temporary name, then
rename) and verified by checksum.

Its own distribution, like every store: the core finds it through the `runner.stores` entry
point `file`, as it finds `oss`, and it uses nothing of the core but `runner.contracts`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from runner.contracts import ObjectInfo, StoreBase, StoreError, copy_verified

__all__ = ["FileStore"]


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def _info(key: str, path: Path) -> ObjectInfo:
    st = path.stat()
    # the inode too: every put is a new file (a rename), and most kernels stamp files with a
    # clock that ticks only every few milliseconds (Linux gives finer stamps only since 6.13),
    # so a same-size put within one tick would keep both size and mtime
    return ObjectInfo(key, st.st_size, f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}")


def _copy(uri: str, src: Path, dest: Path) -> None:
    try:
        copy_verified(src, dest)
    except OSError as e:
        raise StoreError(f"{uri}: {e.strerror or e}") from None


class FileStore(StoreBase):
    """Objects are files; a prefix is a folder."""

    def stat(self, uri: str) -> ObjectInfo | None:
        path = _path(uri)
        return _info(str(path), path) if path.is_file() else None

    def list(self, uri: str) -> list[ObjectInfo]:
        root = _path(uri)
        out = []
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = Path(dirpath) / name
                out.append(_info(path.relative_to(root).as_posix(), path))
        return out

    def get(self, uri: str, dest: Path, size: int | None = None) -> ObjectInfo:
        src = _path(uri)
        _copy(uri, src, dest)
        return _info(str(src), src)

    def read_probe(self, uri: str) -> None:
        try:
            with _path(uri).open("rb") as f:
                f.read(1)
        except OSError as e:
            raise StoreError(f"{uri}: {e.strerror or e}") from None

    def put(self, src: Path, uri: str) -> ObjectInfo:
        dest = _path(uri)
        _copy(uri, src, dest)
        return _info(str(dest), dest)

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            _path(uri).unlink()
