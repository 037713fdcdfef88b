"""The file store passes the core's store conformance suite, named by plain paths and by
file:// URIs (both reach it: a URI without a scheme is a local path)."""

from __future__ import annotations

from pathlib import Path

from runner_file import FileStore

from runner.conformance import StoreConformance
from runner.contracts import Store


class TestPlainPaths(StoreConformance):
    def make_store(self) -> Store:
        return FileStore()

    def make_prefix(self, tmp_path: Path) -> str:
        return f"{tmp_path}/store/"


class TestFileURIs(StoreConformance):
    def make_store(self) -> Store:
        return FileStore()

    def make_prefix(self, tmp_path: Path) -> str:
        return f"file://{tmp_path}/store/"
