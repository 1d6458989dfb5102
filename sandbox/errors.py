"""Meta's error envelope and the errors this flow produces, worded as Meta words them (reference section 6).

Kept independent of ``chronogram.instagram``: the client's classification is tested against these bytes, so
sharing a table would make the tests agree with themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.usage import buc_header


@dataclass
class GraphError(Exception):
    code: int
    message: str
    subcode: int | None = None
    http_status: int = 400
    error_type: str = "OAuthException"
    is_transient: bool = False
    user_title: str | None = None
    user_msg: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"({self.code}/{self.subcode}) {self.message}"

    def envelope(self, fbtrace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
        if self.user_msg is not None:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.code in (1, 2) or self.code == 190 or self.code == 102:
            reason = "invalid_token" if self.code in (190, 102) else "unknown_error"
            headers.setdefault("WWW-Authenticate", f'OAuth "Facebook Platform" "{reason}" "{self.message}"')
        return headers


@dataclass(frozen=True)
class _Entry:
    message: str
    http_status: int = 400
    error_type: str = "OAuthException"
    is_transient: bool = False
    user_title: str | None = None
    user_msg: str | None = None


# Defaults for injected faults, so POST /_sandbox/faults only needs a code (and subcode) to be realistic.
CATALOGUE: dict[tuple[int, int | None], _Entry] = {
    (1, None): _Entry("An unknown error has occurred.", 500, is_transient=True),
    (2, None): _Entry(
        "An unexpected error has occurred. Please retry your request later.", 500, is_transient=True
    ),
    (4, None): _Entry("(#4) Application request limit reached", is_transient=True),
    (17, None): _Entry("(#17) User request limit reached", is_transient=True),
    (32, None): _Entry("(#32) Page request limit reached", is_transient=True),
    (341, None): _Entry("(#341) Application limit reached", is_transient=True),
    (613, None): _Entry("(#613) Calls to this api have exceeded the rate limit.", is_transient=True),
    (368, None): _Entry("(#368) The action attempted has been deemed abusive or is otherwise disallowed"),
    (80002, None): _Entry(
        "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
        is_transient=True,
    ),
    (10, None): _Entry("(#10) Application does not have permission for this action", 403),
    (200, None): _Entry("(#200) Permissions error", 403),
    (190, None): _Entry("Invalid OAuth access token - Cannot parse access token"),
    (190, 460): _Entry(
        "Error validating access token: The session has been invalidated because the user changed their "
        "password or Facebook has changed the session for security reasons."
    ),
    (190, 463): _Entry("Error validating access token: Session has expired."),
    (100, None): _Entry("(#100) Invalid parameter"),
    (100, 33): _Entry(
        "Unsupported get request. Object does not exist, cannot be loaded due to missing permissions, or does "
        "not support this operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
        error_type="GraphMethodException",
    ),
    (-2, 2207003): _Entry("It takes too long to download the media.", user_title="Timeout"),
    (-2, 2207020): _Entry(
        "The media you are trying to access has expired. Please try again with a new media.",
        user_title="Media expired",
    ),
    (-1, 2207001): _Entry("Instagram server error.", user_title="Server error", is_transient=True),
    (-1, 2207032): _Entry(
        "Create media fail, please try to re-create media", user_title="Create media failed"
    ),
    (-1, 2207053): _Entry("An unknown error occurred during upload.", user_title="Upload error"),
    (1, 2207057): _Entry(
        "The thumbnail offset you entered is out of bounds for the video duration.",
        user_title="Invalid thumbnail offset",
        user_msg="Thumbnail offset must be greater than or equal to 0 and less than the video duration.",
    ),
    (4, 2207051): _Entry(
        "Application request limit reached",
        user_title="Action is blocked",
        user_msg="We restrict certain activity to protect our community. Tell us if you think we made a mistake.",
    ),
    (9, 2207042): _Entry(
        "You reached maximum number of posts that is allowed to be published by Content Publishing API.",
        user_title="Maximum posts reached",
        user_msg="You reached maximum number of posts that is allowed to be published by Content Publishing API.",
    ),
    (24, 2207006): _Entry("The media with id cannot be found.", user_title="Media not found"),
    (24, 2207008): _Entry(
        "The media builder does not exist or has been expired.", user_title="Media builder expired"
    ),
    (25, 2207050): _Entry(
        "The Instagram account is restricted.",
        user_title="Restricted account",
        user_msg="The app user's Instagram account is restricted. Open the Instagram app to fix it.",
    ),
    (100, 2207023): _Entry("The media type is unknown.", user_title="Unknown media type"),
    (100, 2207028): _Entry(
        "Your post won't work as a carousel.",
        user_title="Carousel validation failed",
        user_msg="Carousels need at least 2 photos/videos and no more than 10 photos/videos.",
    ),
    (100, 2207040): _Entry(
        "Cannot use more than 20 tags per created media.",
        user_title="Too many tags",
        user_msg="Cannot use more than 20 tags per created media.",
    ),
    (352, 2207026): _Entry(
        "The video format is not supported.",
        user_title="Unsupported video format",
        user_msg="The video format is not supported. Please check spec for supported format.",
    ),
    (9004, 2207052): _Entry(
        "Only photo or video can be accepted as media type.",
        user_title="Media download has failed.",
        user_msg="The media could not be fetched from this uri.",
    ),
    (9007, 2207027): _Entry(
        "Media ID is not available",
        user_title="Media Not Ready For Publishing",
        user_msg="The media is not ready for publishing, please wait for a moment",
    ),
    (36000, 2207004): _Entry(
        "The image size is too large.",
        user_title="Image size too large",
        user_msg="The image is too large to download. It should be less than 8 MiB.",
    ),
    (36001, 2207005): _Entry(
        "The image format is not supported.",
        user_title="Unsupported image format",
        user_msg="The image format is not supported. Supported formats are: JPEG",
    ),
    (36003, 2207009): _Entry(
        "The submitted image with this aspect ratio cannot be published.",
        user_title="Cannot publish image with this aspect ratio",
        user_msg="The submitted image's aspect ratio is not within the allowed range (4:5 to 1.91:1).",
    ),
    (36004, 2207010): _Entry(
        "The caption was too long.",
        user_title="Caption too long",
        user_msg="The caption exceeds the maximum of 2,200 characters, 30 hashtags or 20 @ tags.",
    ),
}


def catalogued(
    code: int, subcode: int | None = None, message: str | None = None, **overrides: Any
) -> GraphError:
    """A GraphError with Meta's wording for ``(code, subcode)`` (falling back to the code alone)."""
    entry = (
        CATALOGUE.get((code, subcode)) or CATALOGUE.get((code, None)) or _Entry(f"(#{code}) Graph API error")
    )
    fields: dict[str, Any] = {
        "message": message or entry.message,
        "http_status": entry.http_status,
        "error_type": entry.error_type,
        "is_transient": entry.is_transient,
        "user_title": entry.user_title,
        "user_msg": entry.user_msg,
    }
    fields.update({key: value for key, value in overrides.items() if value is not None})
    return GraphError(code=code, subcode=subcode, **fields)


def missing_token() -> GraphError:
    return GraphError(104, "An access token is required to request this resource.")


def invalid_token() -> GraphError:
    return catalogued(190)


def _meta_time(when: datetime) -> str:
    return when.strftime("%A, %d-%b-%y %H:%M:%S UTC")


def expired_token(expired_at: datetime, now: datetime) -> GraphError:
    return catalogued(
        190,
        463,
        f"Error validating access token: Session has expired on {_meta_time(expired_at)}. "
        f"The current time is {_meta_time(now)}.",
    )


def revoked_token() -> GraphError:
    return catalogued(190, 460)


def permission_denied(code: int, scope: str) -> GraphError:
    """The token lacks a permission the call needs: HTTP 403 with code 10 or 200-299 (reference sections 6.3,
    6.4). Meta's wording varies by endpoint; this one names the permission, as Meta's messages often do."""
    return GraphError(code, f"(#{code}) Requires {scope} permission to perform this action", http_status=403)


def unsupported_request(method: str, object_id: str) -> GraphError:
    return GraphError(
        100,
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
        error_type="GraphMethodException",
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(2500, f"Unknown path components: {path}")


def nonexisting_field(name: str, node_type: str) -> GraphError:
    return GraphError(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")


def missing_param(name: str) -> GraphError:
    return GraphError(100, f"(#100) The parameter {name} is required")


def invalid_param(message: str) -> GraphError:
    return GraphError(100, f"(#100) {message}")


def builder_expired(creation_id: str) -> GraphError:
    return catalogued(
        24,
        2207008,
        f"The media builder with creation id = {creation_id} does not exist or has been expired.",
        user_msg=f"The media builder with creation id = {creation_id} does not exist or has been expired.",
    )


def not_ready() -> GraphError:
    return catalogued(9007, 2207027)


def quota_reached() -> GraphError:
    return catalogued(9, 2207042)


def buc_throttled(ig_user_id: str, minutes: int) -> GraphError:
    error = catalogued(80002)
    error.headers["X-Business-Use-Case-Usage"] = buc_header(ig_user_id, 100, minutes)
    return error
