"""The store against the real Alibaba Cloud OSS: runs only when credentials are given
(`OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET`, `OSS_ENDPOINT`, optionally `OSS_REGION`) and
`RUNNER_TEST_OSS_BUCKET` names a bucket it may write below `runner-tests/`. The only suite
allowed to skip: no real service is reachable from CI."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from runner_oss import OSSStore

from runner.stores import stage_input, upload_dir

BUCKET = os.environ.get("RUNNER_TEST_OSS_BUCKET")
pytestmark = pytest.mark.skipif(
    not (BUCKET and os.environ.get("OSS_ACCESS_KEY_ID") and os.environ.get("OSS_ENDPOINT")),
    reason="needs real OSS credentials and RUNNER_TEST_OSS_BUCKET",
)


def test_round_trip_on_real_oss(tmp_path: Path) -> None:
    prefix = f"oss://{BUCKET}/runner-tests/{uuid.uuid4().hex}/"
    store = OSSStore()
    src = tmp_path / "up"
    (src / "d").mkdir(parents=True)
    for i in range(20):
        (src / "d" / f"{i}.bin").write_bytes(os.urandom(1000 + i))
    big = src / "big.bin"
    big.write_bytes(os.urandom(40 << 20))  # multipart
    try:
        assert upload_dir(src, prefix) == 21
        info = store.stat(prefix + "big.bin")
        assert info is not None and info.size == 40 << 20 and info.crc64
        local = tmp_path / "down"
        assert stage_input(prefix, local)[:2] == (21, 0)
        assert stage_input(prefix, local)[:2] == (0, 21)
        assert (local / "big.bin").read_bytes() == big.read_bytes()
        store.read_probe(prefix + "d/0.bin")  # a one-byte ranged read
    finally:
        for o in store.list(prefix):
            store.delete(prefix + o.key)
