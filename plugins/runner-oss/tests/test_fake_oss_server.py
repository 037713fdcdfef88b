"""The FAKE OSS server (fake_oss_server.py, beside this file) driven by the real oss2 SDK.

Each test starts its own in-memory server on 127.0.0.1; oss2 talks to it with
path-style URLs because the endpoint is an IP address.

What oss2 (2.19.1) does by itself when the server misbehaves, as these tests
pin down:

* Plain ``Bucket`` calls never retry: one 5xx answer or one dropped
  connection is raised at once (``ServerError`` / ``RequestError``).
* The iterators (``ObjectIterator``, ``ObjectIteratorV2``, ``PartIterator``...)
  retry a page on a 5xx ``ServerError`` up to ``defaults.request_retries``
  (3) attempts in all, but do not retry ``RequestError`` (connection errors).
* ``resumable_upload`` / ``resumable_download`` do not retry either; they keep
  a checkpoint so that calling them again only sends the missing parts.
* CRC: ``put_object``, ``upload_part`` and ``complete_multipart_upload`` compare
  the ``x-oss-hash-crc64ecma`` answer with their own CRC and raise
  ``InconsistentError``; ``get_object_to_file`` (whole object) and
  ``resumable_download`` check it too, but a streamed ``get_object().read()``
  does not: compare ``client_crc`` with ``server_crc`` yourself.
* V4 signing needs ``region=`` on the ``Bucket`` (an IP endpoint carries none)
  and it must equal the server's region.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import random
import time
import xml.etree.ElementTree as ET

import pytest
import requests
from fake_oss_server import FakeOSSServer, crc64ecma, multipart_etag

oss2 = pytest.importorskip("oss2")

AK, SK = "fake-ak-id", "fake-ak-secret"
REGION = "cn-test"
BUCKET = "fake-bucket"
KiB = 1024


def crc(data: bytes) -> int:
    c = oss2.utils.Crc64()
    c.update(data)
    return int(c.crc)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def payload(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


def make_bucket(
    server: FakeOSSServer,
    version: str = "v1",
    ak: str = AK,
    sk: str = SK,
    *,
    name: str = BUCKET,
    region: str | None = REGION,
    **kwargs: object,
) -> oss2.Bucket:
    if version == "v4":
        return oss2.Bucket(
            oss2.AuthV4(ak, sk), server.endpoint, name, region=region, enable_crc=True, **kwargs
        )
    return oss2.Bucket(oss2.Auth(ak, sk), server.endpoint, name, enable_crc=True, **kwargs)


def raw_v1(
    server: FakeOSSServer, method: str, path: str, query: str = "", **kwargs: object
) -> requests.Response:
    """A request signed by hand (signature V1, no sub-resources), without oss2."""
    date = email.utils.formatdate(usegmt=True)
    to_sign = f"{method}\n\n\n{date}\n{path}"
    sig = base64.b64encode(hmac.new(SK.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    url = server.endpoint + path + (f"?{query}" if query else "")
    headers = {"Date": date, "Authorization": f"OSS {AK}:{sig}"}
    return requests.request(method, url, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def server():
    with FakeOSSServer(AK, SK, region=REGION, seed=1234) as srv:
        srv.create_bucket(BUCKET)
        yield srv


@pytest.fixture(params=["v1", "v4"])
def bucket(server: FakeOSSServer, request: pytest.FixtureRequest) -> oss2.Bucket:
    return make_bucket(server, request.param)


# --------------------------------------------------------------------------- objects


def test_put_get_head_delete(bucket, server):
    data = payload(5000)
    put = bucket.put_object(
        "dir/obj.bin", data, headers={"Content-Type": "image/png", "x-oss-meta-owner": "me"}
    )
    assert put.status == 200
    assert put.etag == md5_hex(data)
    assert put.headers["ETag"] == f'"{md5_hex(data)}"'
    assert put.crc == crc(data) == crc64ecma(data)
    assert put.request_id

    got = bucket.get_object("dir/obj.bin")
    assert got.read() == data
    assert got.content_type == "image/png"
    assert got.headers["x-oss-meta-owner"] == "me"
    assert got.object_type == "Normal"
    assert got.server_crc == got.client_crc == crc(data)
    assert got.headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()

    head = bucket.head_object("dir/obj.bin")
    assert (head.content_length, head.etag, head.server_crc) == (
        len(data),
        md5_hex(data),
        crc(data),
    )
    assert abs(head.last_modified - time.time()) < 5
    meta = bucket.get_object_meta("dir/obj.bin")
    assert (meta.content_length, meta.etag) == (len(data), md5_hex(data))
    assert bucket.object_exists("dir/obj.bin")

    assert bucket.delete_object("dir/obj.bin").status == 204
    with pytest.raises(oss2.exceptions.NoSuchKey) as err:
        bucket.get_object("dir/obj.bin")
    assert err.value.status == 404
    with pytest.raises(oss2.exceptions.NoSuchKey):  # HEAD: the error document travels in x-oss-err
        bucket.head_object("dir/obj.bin")
    assert not bucket.object_exists("dir/obj.bin")
    assert bucket.delete_object("dir/obj.bin").status == 204  # deleting a missing key is fine
    assert server.list_keys(BUCKET) == []


def test_error_document_and_request_id(server, bucket):
    with pytest.raises(oss2.exceptions.NoSuchKey) as err:
        bucket.get_object("missing")
    details = err.value.details
    assert list(details)[:4] == ["Code", "Message", "RequestId", "HostId"]
    assert details["RequestId"] == err.value.request_id != ""
    with pytest.raises(oss2.exceptions.NoSuchBucket) as err2:
        make_bucket(server, name="no-such-bucket").put_object("k", b"x")
    assert err2.value.status == 404

    anonymous = requests.get(f"{server.endpoint}/{BUCKET}/missing", timeout=10)
    assert anonymous.status_code == 403
    assert anonymous.headers["x-oss-request-id"]
    root = ET.fromstring(anonymous.content)
    assert root.tag == "Error"  # no namespace anywhere
    assert [c.tag for c in root][:4] == ["Code", "Message", "RequestId", "HostId"]
    assert root.findtext("Code") == "AccessDenied"


def test_raw_requests_see_oss_dialect_xml(server):
    for i in range(3):
        server.put_object(BUCKET, f"k{i}", b"x" * i)
    resp = raw_v1(server, "GET", f"/{BUCKET}/", "list-type=2&max-keys=2")
    assert resp.status_code == 200, resp.text
    assert resp.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b"xmlns" not in resp.content
    root = ET.fromstring(resp.content)
    assert root.tag == "ListBucketResult"
    assert root.findtext("KeyCount") == "2"
    assert root.findtext("IsTruncated") == "true"
    assert [e.text for e in root.iter("Key")] == ["k0", "k1"]
    assert root.find("Contents/Owner") is None  # v2 only sends Owner with fetch-owner=true

    put = raw_v1(server, "PUT", f"/{BUCKET}/raw", data=b"abc")
    assert put.status_code == 200
    assert put.headers["x-oss-hash-crc64ecma"] == str(crc(b"abc"))


def test_content_md5_is_verified(bucket):
    data = b"integrity matters"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    assert bucket.put_object("k", data, headers={"Content-MD5": good}).status == 200
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(oss2.exceptions.InvalidDigest) as err:
        bucket.put_object("k", data, headers={"Content-MD5": bad})
    assert err.value.status == 400


def test_client_crc_header_is_verified(bucket):
    data = b"crc checked by the server"
    assert (
        bucket.put_object("k", data, headers={"x-oss-hash-crc64ecma": str(crc(data))}).status == 200
    )
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.put_object("k", data, headers={"x-oss-hash-crc64ecma": str(crc(data) ^ 1)})
    assert (err.value.status, err.value.code) == (400, "InvalidDigest")


def test_chunked_upload(bucket, server):
    chunks = [b"alpha-", b"beta-", b"gamma"]
    result = bucket.put_object(
        "chunked", iter(chunks)
    )  # no length known: Transfer-Encoding: chunked
    assert result.crc == crc(b"".join(chunks))
    assert server.get_object(BUCKET, "chunked") == b"alpha-beta-gamma"


def test_special_keys_round_trip(bucket, server):
    keys = ["dir/子目录/文件 1.txt", "a+b=c&d?e#f%25.bin", "~tilde/..dots/x", "sp  ace/"]
    for key in keys:
        bucket.put_object(key, key.encode())
    for key in keys:
        assert bucket.get_object(key).read() == key.encode()
    assert sorted(o.key for o in oss2.ObjectIterator(bucket)) == sorted(keys)
    assert sorted(o.key for o in oss2.ObjectIteratorV2(bucket)) == sorted(keys)
    assert sorted(bucket.batch_delete_objects(keys).deleted_keys) == sorted(keys)
    assert server.list_keys(BUCKET) == []


def test_batch_delete(bucket, server):
    for i in range(5):
        bucket.put_object(f"del/{i}", b"x")
    result = bucket.batch_delete_objects(["del/0", "del/1", "del/3", "never-existed"])
    assert result.deleted_keys == ["del/0", "del/1", "del/3", "never-existed"]
    assert server.list_keys(BUCKET) == ["del/2", "del/4"]
    assert server.requests["DeleteMultipleObjects"] == 1


def test_copy_object(bucket, server):
    data = payload(3000)
    bucket.put_object("src", data, headers={"Content-Type": "text/csv", "x-oss-meta-a": "1"})
    copied = bucket.copy_object(BUCKET, "src", "dst")
    assert copied.etag == md5_hex(data)
    assert copied.crc == crc(data)
    head = bucket.head_object("dst")
    assert (head.content_type, head.headers["x-oss-meta-a"]) == ("text/csv", "1")

    bucket.copy_object(
        BUCKET,
        "src",
        "dst2",
        headers={
            "x-oss-metadata-directive": "REPLACE",
            "Content-Type": "text/plain",
            "x-oss-meta-b": "2",
        },
    )
    head2 = bucket.head_object("dst2")
    assert head2.content_type == "text/plain"
    assert "x-oss-meta-a" not in head2.headers and head2.headers["x-oss-meta-b"] == "2"

    server.create_bucket("other-bucket")
    other = make_bucket(server, name="other-bucket")
    other.copy_object(BUCKET, "src", "from/elsewhere")
    assert server.get_object("other-bucket", "from/elsewhere") == data

    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(BUCKET, "missing", "dst3")
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.copy_object(BUCKET, "src", "dst4", headers={"x-oss-copy-source-if-match": '"0000"'})


def test_forbid_overwrite(bucket):
    bucket.put_object("once", b"1")
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.put_object("once", b"2", headers={"x-oss-forbid-overwrite": "true"})
    assert (err.value.status, err.value.code) == (409, "FileAlreadyExists")


def test_append_object(bucket, server):
    first = bucket.append_object("log", 0, b"ab", init_crc=0)  # init_crc makes oss2 check the CRC
    assert (first.next_position, first.crc) == (2, crc(b"ab"))
    second = bucket.append_object("log", 2, b"cd", init_crc=first.crc)
    assert (second.next_position, second.crc) == (4, crc(b"abcd"))
    with pytest.raises(oss2.exceptions.PositionNotEqualToLength) as err:
        bucket.append_object("log", 1, b"zz")
    assert err.value.next_position == 4
    assert bucket.head_object("log").object_type == "Appendable"
    bucket.put_object("normal", b"x")
    with pytest.raises(oss2.exceptions.ObjectNotAppendable):
        bucket.append_object("normal", 1, b"y")


# --------------------------------------------------------------------------- ranges & conditions


def test_ranges(bucket, tmp_path):
    data = bytes(range(256)) * 4  # 1024 bytes
    bucket.put_object("r", data)

    part = bucket.get_object("r", byte_range=(0, 9))
    assert part.status == 206
    assert part.content_range == "bytes 0-9/1024"
    assert part.read() == data[:10]
    assert part.server_crc == crc(data)  # OSS reports the whole object's CRC on a range GET
    assert bucket.get_object("r", byte_range=(None, 10)).read() == data[-10:]
    assert bucket.get_object("r", byte_range=(1000, None)).read() == data[1000:]
    assert (
        bucket.get_object("r", headers={"Range": "bytes=0-1,5-6"}).read() == data[:2]
    )  # first range only

    # OSS quirk: an unsatisfiable range is ignored (200, whole object)...
    whole = bucket.get_object("r", byte_range=(1000, 5000))
    assert (whole.status, whole.read()) == (200, data)
    assert bucket.get_object("r", byte_range=(2000, 3000)).status == 200
    assert bucket.get_object("r", byte_range=(None, 5000)).status == 200
    # ...unless the client asks for standard behaviour.
    standard = {"x-oss-range-behavior": "standard"}
    clipped = bucket.get_object("r", byte_range=(1000, 5000), headers=standard)
    assert (clipped.status, clipped.content_range, clipped.read()) == (
        206,
        "bytes 1000-1023/1024",
        data[1000:],
    )
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.get_object("r", byte_range=(2000, 3000), headers=standard)
    assert (err.value.status, err.value.code) == (416, "InvalidRange")

    target = tmp_path / "range.bin"
    bucket.get_object_to_file("r", str(target), byte_range=(10, 19))  # no CRC check for ranges
    assert target.read_bytes() == data[10:20]


def test_conditional_get(bucket):
    bucket.put_object("c", b"conditional")
    etag = md5_hex(b"conditional")
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("c", headers={"If-None-Match": f'"{etag}"'})
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("c", headers={"If-Match": '"DEADBEEF"'})
    future = email.utils.formatdate(time.time() + 3600, usegmt=True)
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("c", headers={"If-Modified-Since": future})
    assert bucket.get_object("c", headers={"If-Match": etag}).read() == b"conditional"


# --------------------------------------------------------------------------- listing


@pytest.fixture
def many_keys(server):
    keys = [f"k/{i:04d}" for i in range(1050)] + ["top.txt", "d1/x", "d2/y/z", "d2/y2"]
    for key in keys:
        server.put_object(BUCKET, key, b"v")
    return sorted(keys)


def test_list_objects_v1(bucket, server, many_keys):
    first = bucket.list_objects(max_keys=1000)
    assert first.is_truncated and len(first.object_list) == 1000
    assert first.next_marker == many_keys[999]
    second = bucket.list_objects(marker=first.next_marker, max_keys=1000)
    assert not second.is_truncated
    assert [o.key for o in first.object_list + second.object_list] == many_keys
    obj = first.object_list[0]
    assert (obj.etag, obj.size, obj.type, obj.storage_class) == (
        md5_hex(b"v"),
        1,
        "Normal",
        "Standard",
    )
    assert obj.owner is not None

    root = bucket.list_objects(delimiter="/")
    assert root.prefix_list == ["d1/", "d2/", "k/"]
    assert [o.key for o in root.object_list] == ["top.txt"]
    nested = bucket.list_objects(prefix="d2/", delimiter="/")
    assert (nested.prefix_list, [o.key for o in nested.object_list]) == (["d2/y/"], ["d2/y2"])

    # One entry per page: a common prefix is never repeated on the next page.
    pages, marker = [], ""
    while True:
        page = bucket.list_objects(delimiter="/", marker=marker, max_keys=1)
        pages.append([o.key for o in page.object_list] + page.prefix_list)
        if not page.is_truncated:
            break
        marker = page.next_marker
    assert pages == [["d1/"], ["d2/"], ["k/"], ["top.txt"]]

    server.reset_counters()
    assert [o.key for o in oss2.ObjectIterator(bucket, max_keys=250)] == many_keys
    assert server.requests["ListObjects"] == 5
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.list_objects(max_keys=1001)


def test_list_objects_v2(bucket, server, many_keys):
    first = bucket.list_objects_v2(max_keys=1000)
    assert first.is_truncated and len(first.object_list) == 1000
    second = bucket.list_objects_v2(continuation_token=first.next_continuation_token, max_keys=1000)
    assert not second.is_truncated
    assert [o.key for o in first.object_list + second.object_list] == many_keys
    assert first.object_list[0].owner is None
    assert bucket.list_objects_v2(max_keys=1, fetch_owner=True).object_list[0].owner is not None

    after = bucket.list_objects_v2(start_after="k/1047", max_keys=3)
    assert [o.key for o in after.object_list] == ["k/1048", "k/1049", "top.txt"]
    assert not after.is_truncated

    root = bucket.list_objects_v2(delimiter="/", max_keys=2)
    assert root.is_truncated and root.prefix_list == ["d1/", "d2/"]
    rest = bucket.list_objects_v2(delimiter="/", continuation_token=root.next_continuation_token)
    assert (rest.prefix_list, [o.key for o in rest.object_list]) == (["k/"], ["top.txt"])

    server.reset_counters()
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="k/", max_keys=500)] == many_keys[
        3:1053
    ]
    assert server.requests["ListObjectsV2"] == 3
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.list_objects_v2(continuation_token="not base64!")


# --------------------------------------------------------------------------- multipart


def test_multipart_manual(bucket, server):
    chunks = [payload(100 * KiB, 1), payload(100 * KiB, 2), payload(50 * KiB, 3)]
    init = bucket.init_multipart_upload("mp/obj", headers={"Content-Type": "application/x-test"})
    upload_id = init.upload_id
    assert server.list_uploads(BUCKET) == [("mp/obj", upload_id)]
    assert [u.upload_id for u in oss2.ObjectUploadIterator(bucket, "mp/obj")] == [upload_id]

    parts = []
    for number, chunk in enumerate(chunks, start=1):
        result = bucket.upload_part("mp/obj", upload_id, number, chunk)
        assert (result.etag, result.crc) == (md5_hex(chunk), crc(chunk))
        parts.append(
            oss2.models.PartInfo(number, result.etag, size=len(chunk), part_crc=result.crc)
        )

    listed = bucket.list_parts("mp/obj", upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed.parts] == [
        (n, md5_hex(c), len(c)) for n, c in enumerate(chunks, start=1)
    ]
    assert [p.part_number for p in oss2.PartIterator(bucket, "mp/obj", upload_id, max_parts=2)] == [
        1,
        2,
        3,
    ]

    done = bucket.complete_multipart_upload(
        "mp/obj", upload_id, parts
    )  # oss2 checks the combined CRC
    whole = b"".join(chunks)
    expected_etag = (
        hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest().upper() + "-3"
    )
    assert done.etag == expected_etag == multipart_etag(md5_hex(c) for c in chunks)
    assert done.crc == crc(whole)

    got = bucket.get_object("mp/obj")
    assert got.read() == whole
    assert (got.etag, got.object_type, got.content_type) == (
        expected_etag,
        "Multipart",
        "application/x-test",
    )
    assert got.server_crc == got.client_crc == crc(whole)
    assert "Content-MD5" not in got.headers
    assert server.list_uploads(BUCKET) == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("mp/obj", upload_id)


def test_multipart_errors(bucket, server):
    upload_id = bucket.init_multipart_upload("bad").upload_id
    small = bucket.upload_part("bad", upload_id, 1, b"tiny")
    last = bucket.upload_part("bad", upload_id, 2, b"end")

    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.complete_multipart_upload("bad", upload_id, [oss2.models.PartInfo(1, "0" * 32)])
    assert (err.value.status, err.value.code) == (400, "InvalidPart")
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.complete_multipart_upload(
            "bad", upload_id, [oss2.models.PartInfo(1, small.etag)] * 2
        )
    assert (err.value.status, err.value.code) == (400, "InvalidPartOrder")
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.complete_multipart_upload(
            "bad",
            upload_id,
            [oss2.models.PartInfo(1, small.etag), oss2.models.PartInfo(2, last.etag)],
        )
    assert (err.value.status, err.value.code) == (400, "EntityTooSmall")
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.upload_part("bad", upload_id, 10001, b"x")

    assert bucket.abort_multipart_upload("bad", upload_id).status == 204
    with pytest.raises(oss2.exceptions.NoSuchUpload) as err2:
        bucket.upload_part("bad", upload_id, 3, b"x")
    assert err2.value.status == 404
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.abort_multipart_upload("bad", upload_id)

    # A single small part is fine (the last part may be any size); so is x-oss-complete-all.
    upload_id = bucket.init_multipart_upload("one").upload_id
    bucket.upload_part("one", upload_id, 1, b"only")
    done = bucket.complete_multipart_upload(
        "one", upload_id, None, headers={"x-oss-complete-all": "yes"}
    )
    assert done.etag == multipart_etag([md5_hex(b"only")])
    assert server.get_object(BUCKET, "one") == b"only"


def test_resumable_upload_multithreaded(bucket, server, tmp_path):
    data = payload(1300 * KiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    result = oss2.resumable_upload(
        bucket,
        "big/object.bin",
        str(source),
        store=oss2.ResumableStore(root=str(tmp_path)),
        multipart_threshold=200 * KiB,
        part_size=100 * KiB,
        num_threads=4,
    )
    chunks = [data[i : i + 100 * KiB] for i in range(0, len(data), 100 * KiB)]
    assert len(chunks) == 13
    assert result.etag == multipart_etag(md5_hex(c) for c in chunks)
    assert result.crc == crc(data)
    assert server.requests["UploadPart"] == 13
    assert server.get_object(BUCKET, "big/object.bin") == data
    assert server.object_info(BUCKET, "big/object.bin")["type"] == "Multipart"
    assert server.list_uploads(BUCKET) == []

    # Below the threshold resumable_upload falls back to one PutObject.
    small = tmp_path / "small.bin"
    small.write_bytes(data[:1000])
    assert oss2.resumable_upload(
        bucket, "small", str(small), multipart_threshold=200 * KiB
    ).etag == md5_hex(data[:1000])


def test_resumable_download(bucket, server, tmp_path):
    data = payload(450 * KiB)
    server.put_object(BUCKET, "dl", data)
    target = tmp_path / "dl.bin"
    store = oss2.ResumableDownloadStore(root=str(tmp_path))
    oss2.resumable_download(
        bucket,
        "dl",
        str(target),
        multiget_threshold=100 * KiB,
        part_size=100 * KiB,
        num_threads=4,
        store=store,
    )
    assert target.read_bytes() == data
    assert server.requests["GetObject"] == 5  # 5 ranged GETs with If-Match / If-Unmodified-Since

    server.corrupt_crc = True  # the HEAD's CRC no longer matches the CRC of the parts
    with pytest.raises(oss2.exceptions.InconsistentError):
        oss2.resumable_download(
            bucket,
            "dl",
            str(tmp_path / "dl2.bin"),
            multiget_threshold=100 * KiB,
            num_threads=4,
            store=store,
        )


# --------------------------------------------------------------------------- buckets


def test_bucket_operations_via_oss2(server):
    created = make_bucket(server, name="made-by-oss2")
    assert created.create_bucket(oss2.BUCKET_ACL_PUBLIC_READ).status == 200
    assert "made-by-oss2" in server.buckets
    with pytest.raises(oss2.exceptions.ServerError) as err:
        created.create_bucket()
    assert (err.value.status, err.value.code) == (409, "BucketAlreadyExists")

    info = created.get_bucket_info()
    assert (info.name, info.location, info.acl.grant) == (
        "made-by-oss2",
        f"oss-{REGION}",
        "public-read",
    )
    assert created.get_bucket_location().location == f"oss-{REGION}"
    names = [b.name for b in oss2.BucketIterator(oss2.Service(oss2.Auth(AK, SK), server.endpoint))]
    assert names == [BUCKET, "made-by-oss2"]

    created.put_object("k", b"v")
    assert created.get_bucket_stat().object_count == 1
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        created.delete_bucket()
    created.delete_object("k")
    assert created.delete_bucket().status == 204
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        created.get_bucket_info()

    with pytest.raises(oss2.exceptions.ServerError) as err:
        created.get_bucket_acl()  # not implemented by the fake: 501, never a silent success
    assert (err.value.status, err.value.code) == (501, "NotImplemented")


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_wrong_secret_is_signature_mismatch(server, version):
    bad = make_bucket(server, version, sk="not-the-secret")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as err:
        bad.put_object("k", b"x")
    assert err.value.status == 403
    assert err.value.details["StringToSign"]  # OSS returns what it signed, to help debugging
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        bad.head_object("k")
    assert server.list_keys(BUCKET) == []


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_unknown_access_key_id(server, version):
    with pytest.raises(oss2.exceptions.ServerError) as err:
        make_bucket(server, version, ak="who-is-this").get_object("k")
    assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")
    assert err.value.details["OSSAccessKeyId"] == "who-is-this"


def test_v4_region_scope(server):
    assert make_bucket(server, "v4").put_object("k", b"x").status == 200
    provider = oss2.ProviderAuthV4(oss2.StaticCredentialsProvider(AK, SK))
    with_provider = oss2.Bucket(provider, server.endpoint, BUCKET, region=REGION)
    assert with_provider.get_object("k").read() == b"x"

    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as err:
        make_bucket(server, "v4", region="cn-hangzhou").get_object("k")
    assert "region" in err.value.message
    with pytest.raises(oss2.exceptions.ClientError):  # oss2 refuses to sign V4 without a region
        make_bucket(server, "v4", region=None).get_object("k")


def test_sts_security_token():
    with FakeOSSServer("sts-ak", "sts-sk", region=REGION, security_token="token-1") as srv:
        srv.create_bucket(BUCKET)
        srv.add_credentials("sts-ak-2", "sts-sk-2", security_token="token-2")
        for version in (oss2.AUTH_VERSION_1, oss2.AUTH_VERSION_4):
            for ak, sk, token in (
                ("sts-ak", "sts-sk", "token-1"),
                ("sts-ak-2", "sts-sk-2", "token-2"),
            ):
                auth = oss2.StsAuth(ak, sk, token, auth_version=version)
                sts_bucket = oss2.Bucket(auth, srv.endpoint, BUCKET, region=REGION)
                assert sts_bucket.put_object(f"{version}-{ak}", b"sts").status == 200

            wrong = oss2.Bucket(
                oss2.StsAuth("sts-ak", "sts-sk", "token-2", auth_version=version),
                srv.endpoint,
                BUCKET,
                region=REGION,
            )
            with pytest.raises(oss2.exceptions.ServerError) as err:
                wrong.get_object(f"{version}-sts-ak")
            assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")

        missing = oss2.Bucket(
            oss2.Auth("sts-ak", "sts-sk"), srv.endpoint, BUCKET
        )  # STS key without token
        with pytest.raises(oss2.exceptions.ServerError) as err:
            missing.get_object("v1-sts-ak")
        assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")


class _TamperAfterSigningV1(oss2.Auth):
    def _sign_request(self, req, bucket_name, key):
        super()._sign_request(req, bucket_name, key)
        req.headers["x-oss-meta-injected"] = "evil"  # x-oss-* headers are signed in V1


class _TamperQueryAfterSigningV4(oss2.AuthV4):
    def _sign_request(self, req, bucket_name, key, in_additional_headers=None):
        super()._sign_request(req, bucket_name, key, in_additional_headers)
        req.params["prefix"] = "other/"  # V4 signs every query parameter


class _TamperQueryAfterSigningV1(oss2.Auth):
    def _sign_request(self, req, bucket_name, key):
        super()._sign_request(req, bucket_name, key)
        req.params["prefix"] = "other/"  # V1 signs sub-resources only, not prefix


def test_tampered_requests(server):
    tampered = oss2.Bucket(_TamperAfterSigningV1(AK, SK), server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        tampered.put_object("k", b"x")
    tampered_v4 = oss2.Bucket(
        _TamperQueryAfterSigningV4(AK, SK), server.endpoint, BUCKET, region=REGION
    )
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        tampered_v4.list_objects()
    # Faithful to OSS V1: a changed non-sub-resource query parameter still verifies.
    assert (
        oss2.Bucket(_TamperQueryAfterSigningV1(AK, SK), server.endpoint, BUCKET)
        .list_objects()
        .status
        == 200
    )

    with pytest.raises(oss2.exceptions.AccessDenied):
        oss2.Bucket(oss2.AnonymousAuth(), server.endpoint, BUCKET).get_object("k")


def test_clock_skew_is_rejected(server, monkeypatch):
    stale = email.utils.formatdate(time.time() - 3600, usegmt=True)
    monkeypatch.setattr(oss2.auth.utils, "http_date", lambda timeval=None: stale)
    with pytest.raises(oss2.exceptions.ServerError) as err:
        make_bucket(server).get_object("k")
    assert (err.value.status, err.value.code) == (403, "RequestTimeTooSkewed")


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_presigned_urls(server, version):
    signer = make_bucket(server, version)
    url = signer.sign_url("PUT", "signed/obj", 60, headers={"Content-Type": "text/plain"})
    put = signer.put_object_with_url(url, b"via url", headers={"Content-Type": "text/plain"})
    assert put.crc == crc(b"via url")

    get_url = signer.sign_url("GET", "signed/obj", 60)
    assert requests.get(get_url, timeout=10).content == b"via url"
    assert signer.get_object_with_url(get_url).read() == b"via url"

    expired = signer.sign_url("GET", "signed/obj", -10)
    assert requests.get(expired, timeout=10).status_code == 403
    forged = get_url.replace("%2Fobj?", "%2Fother?")  # oss2 quotes "/" in keys: signed%2Fobj
    assert forged != get_url
    resp = requests.get(forged, timeout=10)
    assert resp.status_code == 403 and b"SignatureDoesNotMatch" in resp.content


# --------------------------------------------------------------------------- faults


def test_corrupt_crc(server, bucket, tmp_path):
    data = payload(20 * KiB)
    bucket.put_object("crc", data)
    server.corrupt_crc = True

    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.get_object_to_file("crc", str(tmp_path / "crc.bin"))
    streamed = bucket.get_object("crc")
    assert streamed.read() == data  # a streamed read does not check the CRC...
    assert streamed.client_crc == crc(data) != streamed.server_crc  # ...the caller has to
    assert bucket.head_object("crc").server_crc != crc(data)
    assert server.injected["corrupt_crc"] == 3

    server.corrupt_crc = False
    bucket.get_object_to_file("crc", str(tmp_path / "crc.bin"))
    assert (tmp_path / "crc.bin").read_bytes() == data


def test_fail_rate_answers_5xx_and_plain_calls_do_not_retry(server, bucket):
    server.fail_rate = 1.0
    with pytest.raises(oss2.exceptions.ServerError) as err:
        bucket.put_object("k", b"x")
    assert err.value.status in (500, 503)
    assert err.value.code in ("InternalError", "ServiceUnavailable")
    assert err.value.request_id
    assert server.requests["PutObject"] == 1
    assert server.injected["fail"] == 1
    assert server.list_keys(BUCKET) == []


def test_fail_rate_is_reproducible_with_a_seed(server):
    server.put_object(BUCKET, "k", b"x")
    bucket = make_bucket(server)

    def outcome_pattern() -> list[bool]:
        outcomes = []
        for _ in range(30):
            try:
                bucket.get_object("k").read()
                outcomes.append(True)
            except oss2.exceptions.ServerError:
                outcomes.append(False)
        return outcomes

    server.fail_rate = 0.3
    server.reseed(42)
    first = outcome_pattern()
    server.reseed(42)
    assert outcome_pattern() == first
    assert 0 < first.count(False) < 30


def test_iterators_retry_5xx_but_not_dropped_connections(server, bucket):
    for i in range(250):
        server.put_object(BUCKET, f"it/{i:03d}", b"x")
    server.fault_ops = {"ListObjects"}

    server.fail_next = 2  # two 5xx in a row: within the 3 attempts per page
    assert len(list(oss2.ObjectIterator(bucket, max_keys=100))) == 250
    assert server.requests["ListObjects"] == 3 + 2

    server.fail_next = 3  # a page failing 3 times exhausts the retries
    with pytest.raises(oss2.exceptions.ServerError):
        list(oss2.ObjectIterator(bucket, max_keys=100))

    server.reset_counters()
    server.drop_next = 1
    with pytest.raises(oss2.exceptions.RequestError):
        list(oss2.ObjectIterator(bucket, max_keys=100))
    assert server.requests["ListObjects"] == 1  # no retry after a connection error


def test_drop_rate_closes_connections(server, bucket):
    server.drop_rate = 1.0
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.get_object("k")
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.put_object("big", payload(512 * KiB))  # dropped before the body is read
    assert server.injected["drop"] == 2
    assert server.list_keys(BUCKET) == []
    assert server.request_log[-1][3] is None

    server.drop_rate = 0.0
    assert bucket.put_object("k", b"back to normal").status == 200  # the client pool recovers


def test_resumable_upload_resumes_after_a_failed_part(server, bucket, tmp_path):
    data = payload(600 * KiB)
    source = tmp_path / "resume.bin"
    source.write_bytes(data)
    store = oss2.ResumableStore(root=str(tmp_path))
    kwargs = {
        "store": store,
        "multipart_threshold": 100 * KiB,
        "part_size": 100 * KiB,
        "num_threads": 4,
    }

    server.fault_ops = {"UploadPart"}
    server.fail_next = 1
    with pytest.raises(oss2.exceptions.ServerError):
        oss2.resumable_upload(bucket, "resume", str(source), **kwargs)
    assert len(server.list_uploads(BUCKET)) == 1

    server.reset_counters()
    result = oss2.resumable_upload(bucket, "resume", str(source), **kwargs)
    assert server.requests["UploadPart"] < 6  # only the missing part(s) went again
    assert server.requests["InitiateMultipartUpload"] == 0  # same upload id, from the checkpoint
    assert result.crc == crc(data)
    assert server.get_object(BUCKET, "resume") == data


def test_delay_and_client_timeout(server):
    server.put_object(BUCKET, "slow", b"x")
    server.delay = 0.3
    started = time.monotonic()
    assert make_bucket(server).get_object("slow").read() == b"x"
    assert time.monotonic() - started >= 0.3
    impatient = make_bucket(server, connect_timeout=0.1)  # oss2 uses it as the read timeout too
    with pytest.raises(oss2.exceptions.RequestError):
        impatient.get_object("slow")


def test_request_counters_and_log(server, bucket):
    bucket.put_object("a", b"1")
    bucket.get_object("a").read()
    bucket.head_object("a")
    bucket.list_objects()
    assert {
        op: server.requests[op] for op in ("PutObject", "GetObject", "HeadObject", "ListObjects")
    } == {
        "PutObject": 1,
        "GetObject": 1,
        "HeadObject": 1,
        "ListObjects": 1,
    }
    assert server.requests.total() == 4
    assert [entry[0] for entry in server.request_log] == [
        "PutObject",
        "GetObject",
        "HeadObject",
        "ListObjects",
    ]
    assert all(entry[3] == 200 for entry in server.request_log)
    server.reset_counters()
    assert server.requests.total() == 0
    assert server.server_errors == []


def test_server_lifecycle():
    srv = FakeOSSServer(AK, SK).start()
    endpoint = srv.endpoint
    try:
        assert endpoint.startswith("http://127.0.0.1:")
        srv.create_bucket("life-cycle")
        assert make_bucket(srv, name="life-cycle").put_object("k", b"v").status == 200
        with pytest.raises(ValueError):
            srv.create_bucket("Bad_Name")
    finally:
        srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(oss2.exceptions.RequestError):
        oss2.Bucket(oss2.Auth(AK, SK), endpoint, "life-cycle").get_object("k")
