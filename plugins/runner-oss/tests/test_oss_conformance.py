"""The oss store passes the core's store conformance suite, against the FAKE OSS server beside
this file (it checks V4 signatures and CRC-64 as OSS does), big objects in parts included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_oss_server import FakeOSSServer
from runner_oss import MULTIPART_THRESHOLD, OSSStore

from runner.conformance import StoreConformance
from runner.contracts import Store

KEY_ID = "LTAIconformance01"
SECRET = "conformance-secret-never-shown"


class TestOSSStore(StoreConformance):
    big_object_size = MULTIPART_THRESHOLD + 1  # uploaded and fetched in parts

    @pytest.fixture(autouse=True)
    def _fake_oss(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
        """A server of its own for every test, and the store's settings pointing at it."""
        with FakeOSSServer(KEY_ID, SECRET, region="cn-test") as server:
            server.create_bucket("conformance")
            monkeypatch.setenv("OSS_ACCESS_KEY_ID", KEY_ID)
            monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
            monkeypatch.setenv("OSS_ENDPOINT", server.endpoint)
            monkeypatch.setenv("OSS_REGION", "cn-test")
            monkeypatch.setenv("RUNNER_OSS_CREDENTIALS", str(tmp_path / "no-such-file"))
            monkeypatch.setenv("HOME", str(tmp_path / "home"))
            yield

    def make_store(self) -> Store:
        return OSSStore()

    def make_prefix(self, tmp_path: Path) -> str:
        return "oss://conformance/suite/"
