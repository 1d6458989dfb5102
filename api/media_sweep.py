"""The media bucket's orphan sweep, run by the reconciler (api.reconciler) at most once per
``CHRONOGRAM_API_MEDIA_SWEEP_INTERVAL_SECONDS``.

Deleting a media removes its objects at once (api.use_cases.media): the original, its preview, a video's frames
and an image's rendition if no other media shares it. The sweep catches what that missed: objects
whose removal failed, or whose process died between the row's commit and the removal, and renditions (shared by
content) that no media needs any more. Objects younger than the grace are spared: an upload stores its objects
before its row is committed. Every object is judged against the database in batches, so a sweep costs one
listing of the bucket and one query per batch, never one per object. Any API process may sweep; two sweeping at
once remove the same objects, which is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session

from api.crud import media as crud
from chronogram.previews import RENDITIONS_PREFIX, UPLOADS_PREFIX, frame_stem

log = logging.getLogger("chronogram.api.media_sweep")

_BATCH = 500


@dataclass(frozen=True)
class SweepResult:
    examined: int
    removed: list[str]


def sweep_orphans(storage: Minio, bucket: str, engine: Engine, *, grace: timedelta) -> SweepResult:
    """Remove the bucket's objects under uploads/ and renditions/ that no media row accounts for and that are
    older than ``grace``. Blocking: run it in a thread."""
    cutoff = datetime.now(UTC) - grace
    examined = 0
    removed: list[str] = []
    for prefix in (UPLOADS_PREFIX, RENDITIONS_PREFIX):
        old_enough = (
            item.object_name
            for item in storage.list_objects(bucket, prefix=prefix, recursive=True)
            if item.object_name is not None and item.last_modified is not None and item.last_modified < cutoff
        )
        for batch in _batches(old_enough, _BATCH):
            examined += len(batch)
            with Session(engine) as session:
                orphans = _orphans(session, prefix, batch)
            for key in orphans:
                try:
                    storage.remove_object(bucket, key)
                except Exception:
                    log.warning("media sweep: could not remove %s", key, exc_info=True)
                    continue
                removed.append(key)
    if removed:
        log.warning("media sweep: removed %d orphaned objects of %d examined", len(removed), examined)
    return SweepResult(examined=examined, removed=removed)


def _batches(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(keys)
    while batch := list(islice(iterator, size)):
        yield batch


def _frame_owners(key: str) -> list[str]:
    stem = frame_stem(key)
    return [] if stem is None else [f"{stem}.mp4", f"{stem}.mov"]


def _orphans(session: Session, prefix: str, keys: list[str]) -> Iterable[str]:
    if prefix == UPLOADS_PREFIX:
        # A video's frames belong to it: their key is the video's without its extension, plus the frame's name.
        owners = {key: _frame_owners(key) for key in keys}
        known = crud.known_object_keys(
            session, keys + [owner for names in owners.values() for owner in names]
        )
        return [key for key in keys if key not in known and not known.intersection(owners[key])]
    digests = {key: key[len(RENDITIONS_PREFIX) :].split(".", 1)[0] for key in keys}
    needed = crud.known_sha256(session, list(set(digests.values())))
    return [key for key, digest in digests.items() if digest not in needed]
