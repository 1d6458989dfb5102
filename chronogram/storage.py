"""Object storage (MinIO locally, any S3-compatible service in production) for uploaded media and renditions."""

from __future__ import annotations

from minio import Minio

from chronogram.settings import Settings


def make_minio(settings: Settings) -> Minio:
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def ensure_bucket(client: Minio, bucket: str) -> bool:
    """Create the media bucket if it is missing; returns True when it was created."""
    if client.bucket_exists(bucket):
        return False
    client.make_bucket(bucket)
    return True
