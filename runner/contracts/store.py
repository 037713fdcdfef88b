"""The store contract: a store moves objects between this machine and a kind of storage,
named by URI scheme (`oss://bucket/key`; plain paths and `file://` are the `file` store).

The core stages with it (inputs fetched into a cache, outputs uploaded, logs shipped); a store
only moves and describes objects, every transfer checksum-verified. A store plugin subclasses
`StoreBase` (the defaults of the optional members) and registers the class under the entry
point group `runner.stores` with the scheme as its name.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["ObjectInfo", "Store", "StoreBase", "StoreError"]


class StoreError(Exception):
    """A store operation failed; the message names the URI and says why (never a secret)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object. `key` is relative to the listed prefix (from `list`) or the whole key."""

    key: str
    size: int
    etag: str  # changes whenever the content does
    crc64: str | None = None  # CRC-64/ECMA-182, decimal, when the store knows it


@runtime_checkable
class Store(Protocol):
    """What staging needs from a store. URIs are `scheme://bucket/key`; a prefix ends in `/`."""

    def stat(self, uri: str) -> ObjectInfo | None:
        """The object at `uri`, or None when there is none."""

    def list(self, uri: str) -> list[ObjectInfo]:
        """Every object below the prefix `uri` (recursively), keys relative to it."""

    def get(self, uri: str, dest: Path, size: int | None = None) -> ObjectInfo:
        """Download `uri` to the file `dest` (written whole or not at all), checksum verified.
        `size`, when the caller knows it from a listing, saves asking for it."""

    def put(self, src: Path, uri: str) -> ObjectInfo:
        """Upload the file `src` to `uri`, checksum verified."""

    def delete(self, uri: str) -> None:
        """Remove the object at `uri` (no error when it is already gone)."""

    def get_many(
        self,
        items: builtins.list[tuple[str, Path, int | None]],
        *,
        workers: int,
        each: Callable[[int], None] | None = None,
    ) -> None:
        """`get` for many objects at once [(uri, dest, size)], calling `each(i)` as items[i]
        is in place; the first failure is raised. A store may do it its own way (one event
        loop over many connections, say) instead of `get` in a pool of `workers` threads."""

    def read_probe(self, uri: str) -> None:
        """Read the object's first byte, or raise StoreError: for stores where being listed
        does not mean being readable (OSS: List and Get are separate permissions, and an
        object encrypted with a key one may not use lists fine)."""


class StoreBase:
    """What a store plugin subclasses: the defaults of the optional members of `Store`. The
    required ones (stat, list, get, put, delete) it writes itself."""

    def get(self, uri: str, dest: Path, size: int | None = None) -> ObjectInfo:
        raise NotImplementedError  # required: every store writes its own

    def get_many(
        self,
        items: builtins.list[tuple[str, Path, int | None]],
        *,
        workers: int,
        each: Callable[[int], None] | None = None,
    ) -> None:
        """By default `get` in a pool of `workers` threads."""
        def one(i: int) -> None:
            uri, dest, size = items[i]
            self.get(uri, dest, size)
            if each is not None:
                each(i)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for done in [pool.submit(one, i) for i in range(len(items))]:
                done.result()

    def read_probe(self, uri: str) -> None:
        """By default being listed means being readable."""
        return None
