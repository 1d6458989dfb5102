"""Graph nodes as JSON, honouring ``fields=`` the way Meta does: ``id`` by default, an error for unknown
fields, absent keys for empty values, nested selections for edges (``children{id,media_url}``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sandbox.errors import nonexisting_field
from sandbox.params import FieldSel
from sandbox.state import Account, Comment, Container, Kind, Media, SandboxState, Status

ID_ONLY = (FieldSel("id"),)


def graph_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _render(
    node_type: str,
    getters: dict[str, Callable[[FieldSel], Any]],
    selection: tuple[FieldSel, ...] | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sel in selection or ID_ONLY:
        getter = getters.get(sel.name)
        if getter is None:
            raise nonexisting_field(sel.name, node_type)
        value = getter(sel)
        if value is not None:
            out[sel.name] = value
    if "id" not in out and "id" in getters:
        # Meta always echoes a node's id, whatever the selection.
        out["id"] = getters["id"](FieldSel("id"))
    return out


def container_json(
    state: SandboxState, container: Container, selection: tuple[FieldSel, ...] | None
) -> dict[str, Any]:
    status = state.status(container)
    is_video = container.kind in (Kind.VIDEO, Kind.REELS) or (
        container.kind is Kind.STORIES and "video_url" in container.options
    )

    def video_status(_: FieldSel) -> Any:
        if not is_video:
            return None
        done = not container.processing
        size = container.media_info.bytes if container.media_info else 0
        return {
            "uploading_phase": {"status": "complete" if done else "in_progress", "bytes_transferred": size},
            "processing_phase": {"status": "complete" if status is not Status.IN_PROGRESS else "in_progress"},
        }

    def copyright_status(_: FieldSel) -> Any:
        if not is_video:
            return None
        return {
            "matches_found": False,
            "status": "in_progress" if status is Status.IN_PROGRESS else "completed",
        }

    getters: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: container.id,
        "status_code": lambda _: status.value,
        "status": lambda _: state.status_text(container, status),
        "video_status": video_status,
        "copyright_check_status": copyright_status,
    }
    return _render("ShadowIGMediaBuilder", getters, selection)


def media_json(state: SandboxState, media: Media, selection: tuple[FieldSel, ...] | None) -> dict[str, Any]:
    account = state.accounts.get(media.ig_user_id)
    live_comments = [cid for cid in media.comments if cid in state.comments]
    is_video = media.media_type == "VIDEO"

    def children(sel: FieldSel) -> Any:
        if not media.children:
            return None
        return {"data": [media_json(state, state.media[child], sel.sub) for child in media.children]}

    getters: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: media.id,
        "caption": lambda _: media.caption,
        "media_type": lambda _: media.media_type,
        "media_product_type": lambda _: media.media_product_type,
        "media_url": lambda _: media.media_url,
        "thumbnail_url": lambda _: (media.options.get("cover_url") or media.media_url) if is_video else None,
        "permalink": lambda _: media.permalink,
        "shortcode": lambda _: media.shortcode,
        "timestamp": lambda _: graph_time(media.published_at),
        "username": lambda _: account.username if account else None,
        "owner": lambda _: {"id": media.ig_user_id},
        "like_count": lambda _: 0,
        "comments_count": lambda _: len(live_comments),
        "is_comment_enabled": lambda _: media.media_product_type != "STORY",
        "is_shared_to_feed": lambda _: (
            media.options.get("share_to_feed", True) if media.media_product_type == "REELS" else None
        ),
        "alt_text": lambda _: media.options.get("alt_text"),
        "children": children,
        "legacy_instagram_media_id": lambda _: None,
    }
    return _render("IGMedia", getters, selection)


def comment_json(
    state: SandboxState, comment: Comment, selection: tuple[FieldSel, ...] | None
) -> dict[str, Any]:
    media = state.media.get(comment.media_id)
    getters: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: comment.id,
        "text": lambda _: comment.text,
        "timestamp": lambda _: graph_time(comment.created_at),
        "username": lambda _: comment.username,
        "like_count": lambda _: 0,
        "hidden": lambda _: False,
        "from": lambda _: {"id": media.ig_user_id if media else None, "username": comment.username},
        "media": lambda _: {"id": comment.media_id},
    }
    return _render("IGComment", getters, selection)


def user_json(
    state: SandboxState, account: Account, selection: tuple[FieldSel, ...] | None
) -> dict[str, Any]:
    def media_count(_: FieldSel) -> int:
        return sum(
            1
            for m in state.media.values()
            if m.ig_user_id == account.ig_user_id
            and m.parent_id is None
            and m.media_product_type != "STORY"
            and m.deleted_at is None
        )

    getters: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: account.ig_user_id,
        "user_id": lambda _: account.ig_user_id,
        "username": lambda _: account.username,
        "name": lambda _: account.name,
        "account_type": lambda _: "BUSINESS",
        "media_count": media_count,
        "followers_count": lambda _: 0,
        "follows_count": lambda _: 0,
        "profile_picture_url": lambda _: None,
        "biography": lambda _: None,
        "website": lambda _: None,
    }
    return _render("IGUser", getters, selection)


def ground_truth_media(state: SandboxState, media: Media) -> dict[str, Any]:
    """What was actually published, for tests and benchmarks (never part of Meta's surface)."""
    container = state.containers.get(media.container_id)
    info = media.media_info
    return {
        "id": media.id,
        "container_id": media.container_id,
        "media_type": media.media_type,
        "media_product_type": media.media_product_type,
        "caption": media.caption,
        "media_url": media.media_url,
        "cover_url": media.options.get("cover_url"),
        "thumb_offset": media.options.get("thumb_offset"),
        "share_to_feed": media.options.get("share_to_feed"),
        "location_id": media.options.get("location_id"),
        "user_tags": media.options.get("user_tags", []),
        "collaborators": media.options.get("collaborators", []),
        "alt_text": media.options.get("alt_text"),
        "audio_name": media.options.get("audio_name"),
        "media_info": None if info is None else asdict(info),
        "permalink": media.permalink,
        "shortcode": media.shortcode,
        "published_at": media.published_at.isoformat(),
        "deleted_at": media.deleted_at.isoformat() if media.deleted_at else None,
        "children": [ground_truth_media(state, state.media[child]) for child in media.children],
        "comments": [
            {"id": c.id, "text": c.text, "username": c.username, "timestamp": c.created_at.isoformat()}
            for c in (state.comments[cid] for cid in media.comments if cid in state.comments)
        ],
        "container_kind": container.kind.value if container else None,
    }


def ground_truth_container(state: SandboxState, container: Container) -> dict[str, Any]:
    status = state.status(container)
    return {
        "id": container.id,
        "ig_user_id": container.ig_user_id,
        "kind": container.kind.value,
        "is_carousel_item": container.is_carousel_item,
        "status_code": status.value,
        "status": state.status_text(container, status),
        "error_subcode": state.error_subcode(container),
        "stuck": container.stuck,
        "processing": container.processing,
        "created_at": container.created_at.isoformat(),
        "ready_at": container.ready_at.isoformat(),
        "media_url": container.media_url,
        "media_info": None if container.media_info is None else asdict(container.media_info),
        "options": container.options,
        "children": container.children,
        "published_media_id": container.published_media_id,
        "published_at": container.published_at.isoformat() if container.published_at else None,
    }
