"""The store conformance suite: what every store plugin must do, as pytest tests.

A store's own tests subclass `StoreConformance` and provide `make_store()` and `make_prefix()`
(a URI prefix where nothing exists yet; a test double of the service is fine when it checks
what the service checks, like runner-oss's fake OSS server). The checks move real bytes through
the store the way staging does: put, stat, list, get (into a read-only file the last staging
left), get_many, read_probe, delete.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.contracts import ObjectInfo, Store, StoreError

__all__ = ["StoreConformance"]


class StoreConformance:
    """Subclass in a plugin's tests and implement `make_store` and `make_prefix`."""

    # an object big enough to take the store's other way (OSS: multipart), or None
    big_object_size: int | None = None

    def make_store(self) -> Store:
        """A fresh store to test."""
        raise NotImplementedError

    def make_prefix(self, tmp_path: Path) -> str:
        """A URI prefix, ending in `/`, below which nothing exists yet and the test may write
        (`tmp_path` is the test's own folder, for stores of local files)."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    def _setup(self, tmp_path: Path) -> tuple[Store, str, Path]:
        """(the store, its prefix, a local folder for the test's files)."""
        prefix = self.make_prefix(tmp_path)
        assert prefix.endswith("/"), f"make_prefix must end in '/': {prefix!r}"
        local = tmp_path / "local"
        local.mkdir()
        return self.make_store(), prefix, local

    @staticmethod
    def _file(folder: Path, name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    @staticmethod
    def _same_object(a: ObjectInfo, b: ObjectInfo) -> None:
        assert (a.size, a.etag) == (b.size, b.etag), (a, b)
        if a.crc64 is not None and b.crc64 is not None:
            assert a.crc64 == b.crc64, (a, b)

    # -- the checks -------------------------------------------------------------------------

    def test_it_is_a_store(self) -> None:
        assert isinstance(self.make_store(), Store)

    def test_put_then_stat_describe_the_same_object(self, tmp_path: Path) -> None:
        """put says what it stored (size, a version); stat says the same afterwards."""
        store, prefix, local = self._setup(tmp_path)
        data = os.urandom(3000)
        put = store.put(self._file(local, "a.bin", data), prefix + "in/a.bin")
        assert put.size == len(data) and put.etag, put
        got = store.stat(prefix + "in/a.bin")
        assert got is not None
        self._same_object(got, put)
        assert got.key == put.key

    def test_a_missing_object_or_a_folder_has_no_stat(self, tmp_path: Path) -> None:
        """stat of nothing is None, not an error; a prefix that holds objects is no object."""
        store, prefix, local = self._setup(tmp_path)
        assert store.stat(prefix + "missing.txt") is None
        store.put(self._file(local, "x", b"x"), prefix + "dir/x")
        assert store.stat(prefix + "dir/") is None
        assert store.stat(prefix + "dir") is None

    def test_list_gives_every_object_below_the_prefix_relative_to_it(
        self, tmp_path: Path
    ) -> None:
        """Recursively, keys relative to the prefix, with the sizes and versions stat gives;
        a key that merely starts like the prefix (`subway` for `sub/`) is not below it."""
        store, prefix, local = self._setup(tmp_path)
        blobs = {
            "top.txt": b"top",
            "sub/b.txt": b"bb",
            "sub/deeper/c.txt": b"ccc",
            "subway.txt": b"not below sub/",
        }
        for key, data in blobs.items():
            store.put(self._file(local, "f", data), prefix + key)
        listed = {o.key: o for o in store.list(prefix + "sub/")}
        assert sorted(listed) == ["b.txt", "deeper/c.txt"]
        for key, info in listed.items():
            assert info.size == len(blobs["sub/" + key])
            stat = store.stat(prefix + "sub/" + key)
            assert stat is not None
            self._same_object(info, stat)
        everything = sorted(o.key for o in store.list(prefix))
        assert everything == ["sub/b.txt", "sub/deeper/c.txt", "subway.txt", "top.txt"]

    def test_an_empty_or_unknown_prefix_lists_nothing(self, tmp_path: Path) -> None:
        store, prefix, _ = self._setup(tmp_path)
        assert store.list(prefix) == []
        assert store.list(prefix + "nothing/here/") == []

    def test_get_replaces_a_read_only_file_whole(self, tmp_path: Path) -> None:
        """get writes the object's bytes over what the last staging left (read-only), with
        the listed size as a hint or without, and leaves no temporary file beside it."""
        store, prefix, local = self._setup(tmp_path)
        data = os.urandom(5000)
        put = store.put(self._file(local, "src", data), prefix + "obj.bin")
        dest_dir = tmp_path / "dest"
        dest_dir.mkdir()
        dest = self._file(dest_dir, "obj.bin", b"an older version")
        dest.chmod(0o444)
        for size in (None, put.size):
            got = store.get(prefix + "obj.bin", dest, size)
            assert dest.read_bytes() == data
            assert got.size == len(data)
            self._same_object(got, put)
            assert sorted(p.name for p in dest_dir.iterdir()) == ["obj.bin"]

    def test_getting_a_missing_object_is_a_store_error_that_leaves_nothing(
        self, tmp_path: Path
    ) -> None:
        store, prefix, _ = self._setup(tmp_path)
        dest_dir = tmp_path / "dest"
        dest_dir.mkdir()
        with pytest.raises(StoreError) as e:
            store.get(prefix + "missing.bin", dest_dir / "missing.bin")
        assert "missing.bin" in str(e.value)  # the message names the URI
        assert list(dest_dir.iterdir()) == []

    def test_a_new_version_has_a_new_etag(self, tmp_path: Path) -> None:
        """Staging fetches again exactly when the etag changes: new content of the same
        size, put at once, is a new version."""
        store, prefix, local = self._setup(tmp_path)
        first = store.put(self._file(local, "v1", b"A" * 100), prefix + "v")
        second = store.put(self._file(local, "v2", b"B" * 100), prefix + "v")
        assert second.etag != first.etag
        stat = store.stat(prefix + "v")
        assert stat is not None and stat.etag == second.etag
        store.get(prefix + "v", local / "back")
        assert (local / "back").read_bytes() == b"B" * 100

    def test_an_empty_object_round_trips(self, tmp_path: Path) -> None:
        """(The runner's write check puts one.)"""
        store, prefix, local = self._setup(tmp_path)
        put = store.put(self._file(local, "empty", b""), prefix + "empty")
        assert put.size == 0
        assert [(o.key, o.size) for o in store.list(prefix)] == [("empty", 0)]
        store.get(prefix + "empty", local / "back")
        assert (local / "back").read_bytes() == b""

    def test_keys_with_spaces_and_other_alphabets_round_trip(self, tmp_path: Path) -> None:
        store, prefix, local = self._setup(tmp_path)
        key = "a folder/ünïcode 名前 (1)+&=.txt"
        store.put(self._file(local, "f", b"named"), prefix + key)
        assert [o.key for o in store.list(prefix)] == [key]
        info = store.stat(prefix + key)
        assert info is not None and info.size == 5
        store.get(prefix + key, local / "back")
        assert (local / "back").read_bytes() == b"named"

    def test_delete_removes_and_may_be_repeated(self, tmp_path: Path) -> None:
        store, prefix, local = self._setup(tmp_path)
        store.put(self._file(local, "d", b"doomed"), prefix + "d")
        store.delete(prefix + "d")
        assert store.stat(prefix + "d") is None
        assert store.list(prefix) == []
        store.delete(prefix + "d")  # already gone: no error
        store.delete(prefix + "never-was")

    def test_get_many_places_each_and_says_so(self, tmp_path: Path) -> None:
        """get_many fetches every item, calls `each(i)` once per item, in place."""
        store, prefix, local = self._setup(tmp_path)
        blobs = {f"many/{i}.bin": os.urandom(100 + i) for i in range(7)}
        for key, data in blobs.items():
            store.put(self._file(local, "f", data), prefix + key)
        dest = tmp_path / "dest"
        dest.mkdir()
        items: list[tuple[str, Path, int | None]] = [
            (prefix + key, dest / key.replace("/", "-"), len(data) if i % 2 else None)
            for i, (key, data) in enumerate(blobs.items())
        ]
        placed: list[int] = []

        def each(i: int) -> None:
            assert items[i][1].is_file(), f"each({i}) before the file is in place"
            placed.append(i)

        store.get_many(items, workers=3, each=each)
        assert sorted(placed) == list(range(len(items)))
        for (_, path, _), data in zip(items, blobs.values(), strict=True):
            assert path.read_bytes() == data

    def test_get_many_raises_a_failure(self, tmp_path: Path) -> None:
        store, prefix, local = self._setup(tmp_path)
        store.put(self._file(local, "f", b"here"), prefix + "here")
        dest = tmp_path / "dest"
        dest.mkdir()
        items: list[tuple[str, Path, int | None]] = [
            (prefix + "here", dest / "here", 4),
            (prefix + "not-here", dest / "not-here", 4),
        ]
        with pytest.raises(StoreError):
            store.get_many(items, workers=2)
        assert not (dest / "not-here").exists()

    def test_read_probe_reads_an_object(self, tmp_path: Path) -> None:
        """What `runner validate` asks of an input it has listed: no error when readable."""
        store, prefix, local = self._setup(tmp_path)
        store.put(self._file(local, "f", b"readable"), prefix + "r")
        store.read_probe(prefix + "r")  # raises StoreError when it cannot read

    def test_a_big_object_round_trips(self, tmp_path: Path) -> None:
        """An object big enough to take the store's other way (`big_object_size`)."""
        if self.big_object_size is None:
            pytest.skip("the store moves objects of every size the same way")
        store, prefix, local = self._setup(tmp_path)
        data = os.urandom(self.big_object_size)
        put = store.put(self._file(local, "big", data), prefix + "big.bin")
        assert put.size == len(data)
        listed = store.list(prefix)
        assert [(o.key, o.size) for o in listed] == [("big.bin", len(data))]
        got = store.get(prefix + "big.bin", local / "back", listed[0].size)
        assert got.size == len(data)
        assert (local / "back").read_bytes() == data
