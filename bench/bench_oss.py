#!/usr/bin/env python3
"""Benchmark: staging through the runner's oss store versus plain oss2 calls, same run.

Against the FAKE OSS server of runner-oss's tests (fake_oss_server.py there) on loopback, which
checks signatures and CRC-64 like OSS. Measured, rounds interleaved, medians:

- 2,000 files of 4 KiB: the runner's `upload_dir` / `stage_input` (parallel, verified) versus
  a single-threaded loop of `put_object_from_file` / `get_object_to_file`.
  Target (issue 4): >= 4x faster.
- one 200 MB file: the runner's put/get versus oss2's own resumable transfer with 4 threads.
  Target: >= 0.9x of its speed.

    .venv/bin/python bench/bench_oss.py                # 2000 small files, 200 MB, 3 rounds
    .venv/bin/python bench/bench_oss.py --small 300 --big-mb 40 -r 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import oss2  # noqa: E402

from runner import stores  # noqa: E402

KEY, SECRET, BUCKET = "bench-key", "bench-secret", "bench"


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument(
        "--latency", type=float, default=0.0, help="seconds the server waits per request (RTT)"
    )
    ap.add_argument("--dir", help="where the files go (default: /dev/shm, a tmpfs)")
    args = ap.parse_args()
    # files live in memory (tmpfs) when it can: on this VM's disk, creating a file takes
    # 0.03 ms or 0.7 ms depending on the minute, which drowns what is measured here
    where = args.dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    tmp = Path(tempfile.mkdtemp(prefix="runner-bench-oss-", dir=where))
    try:
        # the server in a process of its own: sharing the client's interpreter (and its GIL)
        # would measure the server's locking, not the transfers
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, KEY, SECRET, BUCKET, str(args.latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            endpoint = server.stdout.readline().strip()
            os.environ.update(
                OSS_ACCESS_KEY_ID=KEY,
                OSS_ACCESS_KEY_SECRET=SECRET,
                OSS_ENDPOINT=endpoint,
                RUNNER_OSS_CREDENTIALS=str(tmp / "none"),
                XDG_CACHE_HOME=str(tmp / "cache"),
            )
            bucket = oss2.Bucket(oss2.Auth(KEY, SECRET), endpoint, BUCKET)
            small = tmp / "small"
            small.mkdir()
            for i in range(args.small):
                (small / f"{i:05d}.bin").write_bytes(os.urandom(4096))
            big = tmp / "big.bin"
            with big.open("wb") as f:
                for _ in range(args.big_mb):
                    f.write(os.urandom(1 << 20))
            files = sorted(small.iterdir())
            res: dict[str, list[float]] = {}

            def add(name: str, seconds: float) -> None:
                res.setdefault(name, []).append(seconds)

            for r in range(args.rounds):
                one_round(r, small, big, files, bucket, tmp, add)
            med = {k: statistics.median(v) for k, v in res.items()}
            print(
                f"small={args.small} x 4 KiB, big={args.big_mb} MB, rounds={args.rounds}, "
                f"server latency {args.latency * 1000:.0f} ms per request"
            )
            for what, target in (("small up", 4.0), ("small down", 4.0)):
                ratio = med[f"{what} oss2"] / med[f"{what} runner"]
                print(
                    f"{what:<11} runner {med[f'{what} runner']:6.2f} s   single-threaded oss2 "
                    f"{med[f'{what} oss2']:6.2f} s   speed-up {ratio:5.2f}x "
                    f"(target >= {target}x: {'ok' if ratio >= target else 'MISS'})"
                )
            for what in ("big up", "big down"):
                ratio = med[f"{what} oss2"] / med[f"{what} runner"]
                print(
                    f"{what:<11} runner {med[f'{what} runner']:6.2f} s   oss2 resumable x4 "
                    f"{med[f'{what} oss2']:6.2f} s   relative speed {ratio:5.2f}x "
                    f"(target >= 0.9x: {'ok' if ratio >= 0.9 else 'MISS'})"
                )
        finally:
            server.terminate()
            server.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def one_round(
    r: int,
    small: Path,
    big: Path,
    files: list[Path],
    bucket: oss2.Bucket,
    tmp: Path,
    add: Callable[[str, float], None],
) -> None:
    up = f"oss://{BUCKET}/r{r}/"
    add("small up runner", timed(lambda: stores.upload_dir(small, up + "s/")))
    add(
        "small up oss2",
        timed(lambda: [bucket.put_object_from_file(f"r{r}/p/{p.name}", str(p)) for p in files]),
    )
    down = tmp / f"down{r}"
    add("small down runner", timed(lambda: stores.stage_input(up + "s/", down / "s")))
    (down / "p").mkdir(parents=True)
    add(
        "small down oss2",
        timed(
            lambda: [
                bucket.get_object_to_file(f"r{r}/s/{p.name}", str(down / "p" / p.name))
                for p in files
            ]
        ),
    )
    store = stores.store_for(up)
    add("big up runner", timed(lambda: store.put(big, up + "big.bin")))
    add(
        "big up oss2",
        timed(
            lambda: oss2.resumable_upload(
                bucket, f"r{r}/big2.bin", str(big), multipart_threshold=32 << 20,
                part_size=8 << 20, num_threads=4,
                store=oss2.ResumableStore(root=str(tmp / "ck")),
            )
        ),
    )  # fmt: skip
    add("big down runner", timed(lambda: store.get(up + "big.bin", down / "big")))
    add(
        "big down oss2",
        timed(
            lambda: oss2.resumable_download(
                bucket, f"r{r}/big2.bin", str(down / "big2"),
                multiget_threshold=32 << 20, part_size=8 << 20, num_threads=4,
                store=oss2.ResumableDownloadStore(root=str(tmp / "ck")),
            )
        ),
    )  # fmt: skip
    shutil.rmtree(down)


SERVE = f"""
import sys, time
sys.path.insert(0, {str(ROOT / "plugins" / "runner-oss" / "tests")!r})
from fake_oss_server import FakeOSSServer
server = FakeOSSServer(sys.argv[1], sys.argv[2]).start()
server.create_bucket(sys.argv[3])
server.delay = float(sys.argv[4])
print(server.endpoint, flush=True)
while True:
    time.sleep(3600)
"""


if __name__ == "__main__":
    main()
