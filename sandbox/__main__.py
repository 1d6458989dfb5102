"""``python -m sandbox --port 8900``: run the Graph API sandbox in the foreground."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from sandbox.app import create_app
from sandbox.config import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID, DEMO_USERNAME, SandboxConfig
from sandbox.runner import KEEP_ALIVE_SECONDS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Local Instagram Graph API sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument(
        "--image-processing-seconds", type=float, default=defaults.image_processing_seconds, metavar="S"
    )
    parser.add_argument(
        "--video-processing-seconds", type=float, default=defaults.video_processing_seconds, metavar="S"
    )
    parser.add_argument(
        "--carousel-processing-seconds", type=float, default=defaults.carousel_processing_seconds, metavar="S"
    )
    parser.add_argument("--quota", type=int, default=defaults.quota_total, help="posts per account per 24 h")
    parser.add_argument(
        "--buc-calls-per-hour",
        type=int,
        default=defaults.buc_calls_per_hour,
        help="Business Use Case call budget per account; 0 disables throttling",
    )
    parser.add_argument(
        "--republish-mode",
        choices=["error", "idempotent", "duplicate"],
        default=defaults.republish_mode,
        help="answer to media_publish on an already PUBLISHED container (undocumented by Meta)",
    )
    parser.add_argument(
        "--accept-png", action="store_true", help="accept PNG images (Meta documents JPEG only)"
    )
    parser.add_argument(
        "--api-version", default=defaults.default_api_version, help="version for unversioned paths"
    )
    parser.add_argument(
        "--token-lifetime-seconds",
        type=int,
        default=defaults.long_lived_token_seconds,
        metavar="S",
        help="lifetime of the long-lived tokens an exchange or a refresh issues (Meta: 60 days)",
    )
    parser.add_argument(
        "--token-refresh-min-age-seconds",
        type=int,
        default=defaults.token_refresh_min_age_seconds,
        metavar="S",
        help="how old a token must be before it can be refreshed (Meta: 24 h)",
    )
    parser.add_argument("--no-demo-account", dest="demo_account", action="store_false")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = SandboxConfig(
        image_processing_seconds=args.image_processing_seconds,
        video_processing_seconds=args.video_processing_seconds,
        carousel_processing_seconds=args.carousel_processing_seconds,
        quota_total=args.quota,
        buc_calls_per_hour=args.buc_calls_per_hour,
        republish_mode=args.republish_mode,
        accept_png=args.accept_png,
        default_api_version=args.api_version,
        demo_account=args.demo_account,
        long_lived_token_seconds=args.token_lifetime_seconds,
        token_refresh_min_age_seconds=args.token_refresh_min_age_seconds,
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    base_url = f"http://{args.host}:{args.port}"
    print(f"Instagram Graph API sandbox on {base_url} (admin: {base_url}/_sandbox/docs)", flush=True)  # noqa: T201
    if config.demo_account:
        print(  # noqa: T201
            f"demo account: ig_user_id={DEMO_IG_USER_ID} username={DEMO_USERNAME} access_token={DEMO_ACCESS_TOKEN}",
            flush=True,
        )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
