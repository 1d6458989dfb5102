"""Objects round-trip through the real MinIO the project builds, with the same client code the app uses."""

from __future__ import annotations

import hashlib
import io
import os
import uuid

from chronogram.settings import Settings
from chronogram.storage import ensure_bucket, make_minio


def test_object_round_trips_through_minio(settings: Settings) -> None:
    client = make_minio(settings)
    bucket = f"smoke-{uuid.uuid4().hex[:12]}"
    assert ensure_bucket(client, bucket) is True
    assert ensure_bucket(client, bucket) is False  # idempotent: the run command calls it on every start

    payload = os.urandom(
        3 * 1024 * 1024 + 17
    )  # bigger than one multipart chunk boundary is not needed; random is
    key = "media/2026/11/original.bin"
    client.put_object(
        bucket, key, io.BytesIO(payload), length=len(payload), content_type="application/octet-stream"
    )

    stat = client.stat_object(bucket, key)
    assert stat.size == len(payload)
    response = client.get_object(bucket, key)
    try:
        assert hashlib.sha256(response.read()).digest() == hashlib.sha256(payload).digest()
    finally:
        response.close()
        response.release_conn()
    assert [obj.object_name for obj in client.list_objects(bucket, prefix="media/", recursive=True)] == [key]
