"""The rules of ``POST /{ig-user-id}/media`` and ``POST /{ig-user-id}/media_publish`` (reference 3.1, 5, 10.3)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

import httpx

from sandbox.errors import (
    GraphError,
    builder_expired,
    catalogued,
    invalid_param,
    missing_param,
    not_ready,
    quota_reached,
)
from sandbox.faults import FaultAction
from sandbox.media import (
    COVER_UNSUPPORTED,
    FetchError,
    fetch,
    image_fetch_error,
    inspect_image,
    inspect_video,
    video_fetch_subcode,
)
from sandbox.params import Params
from sandbox.state import Account, Container, Kind, Media, SandboxState, Status

logger = logging.getLogger(__name__)

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_ALT_TEXT = 1000
MAX_COLLABORATORS = 3
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_MENTION = re.compile(r"(?<!\w)@[\w.]+")


def resolve_kind(params: Params) -> tuple[Kind, bool]:
    media_type = params.get_str("media_type")
    is_item = params.get_bool("is_carousel_item") or False
    image_url, video_url = params.get_str("image_url"), params.get_str("video_url")
    if media_type in (None, "IMAGE"):
        if image_url is None:
            if video_url is not None:
                # Single feed videos were retired on 2023-11-09; they are REELS now.
                raise catalogued(
                    100, 2207023, "The media type VIDEO is not supported here; use media_type=REELS."
                )
            raise missing_param("image_url")
        return Kind.IMAGE, is_item
    if media_type == "VIDEO":
        if not is_item:
            raise catalogued(
                100,
                2207023,
                "The VIDEO media type is only available for carousel items; use media_type=REELS.",
            )
        if video_url is None:
            raise missing_param("video_url")
        return Kind.VIDEO, True
    if media_type in ("REELS", "STORIES", "CAROUSEL") and is_item:
        raise invalid_param(f"Param is_carousel_item is not supported for media_type {media_type}")
    if media_type == "REELS":
        if video_url is None:
            raise missing_param("video_url")
        return Kind.REELS, False
    if media_type == "STORIES":
        if (image_url is None) == (video_url is None):
            raise missing_param("image_url or video_url")
        return Kind.STORIES, False
    if media_type == "CAROUSEL":
        return Kind.CAROUSEL, False
    raise catalogued(100, 2207023, f"The media type {media_type} is unknown.")


def _check_caption(caption: str) -> None:
    if len(caption) > MAX_CAPTION or len(_HASHTAG.findall(caption)) > MAX_HASHTAGS:
        raise catalogued(36004, 2207010)
    if len(_MENTION.findall(caption)) > MAX_MENTIONS:
        raise catalogued(100, 2207040)


def _user_tags(params: Params, kind: Kind, is_video: bool) -> list[dict[str, Any]]:
    raw = params.get_list("user_tags")
    if raw is None:
        return []
    if kind is Kind.CAROUSEL:
        raise invalid_param("Param user_tags is not supported on a carousel; tag its items instead")
    if len(raw) > MAX_MENTIONS:
        raise catalogued(100, 2207040)
    tags: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("username"), str) or not item["username"]:
            raise invalid_param(f"Param user_tags[{index}][username] is required")
        tag: dict[str, Any] = {"username": item["username"]}
        if not is_video:
            for axis in ("x", "y"):
                value = item.get(axis)
                if value is None and kind is Kind.STORIES:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    raise invalid_param(f"Param user_tags[{index}][{axis}] must be a number")
                try:
                    number = float(value)
                except ValueError:
                    raise invalid_param(f"Param user_tags[{index}][{axis}] must be a number") from None
                if not (math.isfinite(number) and 0.0 <= number <= 1.0):
                    raise invalid_param(f"Param user_tags[{index}][{axis}] must be between 0 and 1")
                tag[axis] = number
        tags.append(tag)
    return tags


def resolve_options(params: Params, kind: Kind, is_item: bool) -> dict[str, Any]:
    """Validated, normalised creation options; the same dict ends up in the ground truth."""
    is_video = kind in (Kind.VIDEO, Kind.REELS) or (kind is Kind.STORIES and params.has("video_url"))
    options: dict[str, Any] = {}
    caption = params.get_str("caption")
    if caption is not None and kind is not Kind.STORIES:
        if is_item:
            raise invalid_param("Param caption is not supported for carousel items")
        _check_caption(caption)
        options["caption"] = caption
    location_id = params.get_str("location_id")
    if location_id is not None:
        if is_item or kind is Kind.STORIES:
            raise invalid_param("Param location_id is not supported for this media")
        if not location_id.isdigit():
            raise invalid_param("Param location_id must be a valid location id")
        options["location_id"] = location_id
    tags = _user_tags(params, kind, is_video)
    if tags:
        options["user_tags"] = tags
    alt_text = params.get_str("alt_text")
    if alt_text is not None:
        if kind is not Kind.IMAGE:
            raise invalid_param("Param alt_text is only supported for images")
        if len(alt_text) > MAX_ALT_TEXT:
            raise invalid_param(f"Param alt_text must be at most {MAX_ALT_TEXT} characters")
        options["alt_text"] = alt_text
    collaborators = params.get_list("collaborators")
    if collaborators:
        if is_item or kind is Kind.STORIES:
            raise invalid_param("param collaborators is not allowed for this media")
        if len(collaborators) > MAX_COLLABORATORS or not all(isinstance(c, str) and c for c in collaborators):
            raise invalid_param(
                f"Param collaborators must be a list of at most {MAX_COLLABORATORS} usernames"
            )
        options["collaborators"] = list(collaborators)
    share_to_feed = params.get_bool("share_to_feed")
    if share_to_feed is not None:
        if kind not in (Kind.REELS, Kind.CAROUSEL):
            raise invalid_param("Param share_to_feed is only supported for reels")
        options["share_to_feed"] = share_to_feed
    cover_url = params.get_str("cover_url")
    if cover_url is not None:
        if kind is not Kind.REELS:
            raise invalid_param("Param cover_url is only supported for reels")
        options["cover_url"] = cover_url
    if params.has("thumb_offset"):
        if not is_video:
            raise invalid_param("Param thumb_offset is only supported for videos")
        try:
            offset = params.get_int("thumb_offset")
        except GraphError:
            raise catalogued(1, 2207057) from None
        if offset is None or offset < 0:
            raise catalogued(1, 2207057)
        options["thumb_offset"] = offset
    audio_name = params.get_str("audio_name")
    if audio_name is not None:
        if kind is not Kind.REELS:
            raise invalid_param("Param audio_name is only supported for reels")
        options["audio_name"] = audio_name
    for key in ("image_url", "video_url"):
        value = params.get_str(key)
        if value is not None:
            options[key] = value
    return options


def _carousel_children(state: SandboxState, account: Account, params: Params) -> list[str]:
    raw = params.get_list("children")
    if raw is None:
        raise missing_param("children")
    children = [str(child).strip() for child in raw]
    if not 2 <= len(children) <= 10:
        raise catalogued(100, 2207028)
    for child_id in children:
        child = state.containers.get(child_id)
        if (
            child is None
            or child.ig_user_id != account.ig_user_id
            or not child.is_carousel_item
            or state.status(child) in (Status.ERROR, Status.EXPIRED, Status.PUBLISHED)
        ):
            raise builder_expired(child_id)
    return children


def _video_limit(state: SandboxState, kind: Kind) -> int:
    config = state.config
    if kind is Kind.REELS:
        return config.max_reel_bytes
    if kind is Kind.STORIES:
        return config.max_story_video_bytes
    return config.max_carousel_video_bytes


async def create_container(
    state: SandboxState, http: httpx.AsyncClient, account: Account, params: Params
) -> str:
    config = state.config
    if config.container_cap and state.containers_in_window(account) >= config.container_cap:
        raise catalogued(
            config.container_cap_error_code,
            config.container_cap_error_subcode,
            "The account reached the limit of media containers created in 24 hours.",
        )
    if params.has("upload_type"):
        raise invalid_param(
            "upload_type (resumable upload) is not supported by the sandbox; pass a video_url"
        )
    kind, is_item = resolve_kind(params)
    options = resolve_options(params, kind, is_item)
    is_video = "video_url" in options and kind is not Kind.IMAGE
    media_url = options.get("video_url") if is_video else options.get("image_url")
    media_info = None
    if kind in (Kind.IMAGE, Kind.STORIES) and not is_video:
        # Meta fetches images while the create call is open, so their problems are this call's 400s.
        try:
            data = await fetch(
                http,
                str(media_url),
                max_bytes=config.max_image_bytes,
                time_limit=config.download_timeout_seconds,
            )
        except FetchError as error:
            raise image_fetch_error(error) from None
        media_info = inspect_image(data, config, check_aspect=kind is Kind.IMAGE)
    children = _carousel_children(state, account, params) if kind is Kind.CAROUSEL else []
    now = state.clock.now()
    container = Container(
        id=state.new_container_id(),
        ig_user_id=account.ig_user_id,
        kind=kind,
        is_carousel_item=is_item,
        created_at=now,
        ready_at=now + state.processing_delay(account, kind, video=is_video),
        options=options,
        media_url=media_url,
        media_info=media_info,
        children=children,
    )
    fault = state.faults.take_container_fault(account.ig_user_id)
    if fault is not None:
        apply_container_fault(container, fault.spec.action, fault.spec.error_subcode)
    if is_video:
        container.processing = True
        container.task = asyncio.create_task(_process_video(state, http, container))
    state.containers[container.id] = container
    account.container_log.append(now)
    return container.id


def apply_container_fault(container: Container, action: FaultAction, subcode: int | None) -> None:
    if action is FaultAction.CONTAINER_STUCK:
        container.stuck = True
    elif action is FaultAction.CONTAINER_ERROR:
        container.error_subcode = subcode


async def _process_video(state: SandboxState, http: httpx.AsyncClient, container: Container) -> None:
    """Meta's asynchronous video fetch: problems surface as an ERROR status, never as a 400."""
    config = state.config
    try:
        subcode: int | None = None
        try:
            data = await fetch(
                http,
                str(container.media_url),
                max_bytes=_video_limit(state, container.kind),
                time_limit=config.download_timeout_seconds,
            )
        except FetchError as error:
            subcode = video_fetch_subcode(error)
        else:
            media_type = "VIDEO" if container.is_carousel_item else container.kind.value
            offset = container.options.get("thumb_offset")
            # A cover_url wins over thumb_offset (reference 3.1), so the offset is not held to the duration then.
            if container.options.get("cover_url"):
                offset = None
            result = await asyncio.to_thread(inspect_video, data, media_type, offset)
            if isinstance(result, int):
                subcode = result
            else:
                container.media_info = result
        cover_url = container.options.get("cover_url")
        if subcode is None and cover_url:
            try:
                cover = await fetch(
                    http,
                    cover_url,
                    max_bytes=config.max_image_bytes,
                    time_limit=config.download_timeout_seconds,
                )
                container.cover_info = inspect_image(cover, config, check_aspect=False)
            except FetchError as error:
                subcode = video_fetch_subcode(error)
            except GraphError:
                subcode = COVER_UNSUPPORTED
        if subcode is not None and container.error_subcode is None:
            container.error_subcode = subcode
    except Exception:
        logger.exception("processing container %s failed", container.id)
        container.error_subcode = container.error_subcode or 2207001
    finally:
        container.processing = False


def publish(state: SandboxState, account: Account, creation_id: str) -> str:
    """The media id for a publish, or Meta's error; reference 10.3 with section 11's switches."""
    config = state.config
    container = state.containers.get(creation_id)
    if container is None or container.ig_user_id != account.ig_user_id:
        raise builder_expired(creation_id)
    if container.is_carousel_item:
        raise invalid_param(
            f"The media with creation id = {creation_id} is a carousel item; publish its carousel"
        )
    status = state.status(container)
    if status is Status.PUBLISHED:
        if config.republish_mode == "error":
            raise builder_expired(creation_id)
        if config.republish_mode == "idempotent" and container.published_media_id is not None:
            return container.published_media_id
    elif status is Status.IN_PROGRESS:
        raise not_ready()
    elif status is Status.ERROR:
        raise not_ready() if config.errored_publish_mode == "not_ready" else builder_expired(creation_id)
    elif status is Status.EXPIRED:
        raise builder_expired(creation_id)
    if state.quota_usage(account) >= state.quota_total(account):
        raise quota_reached()
    media: Media = state.publish(account, container)
    return media.id
