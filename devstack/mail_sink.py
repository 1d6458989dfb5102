"""A local SMTP sink for `make dev`: accepts every message and prints it, so that notification emails show in the
stack's logs instead of leaving the machine.

    python -m devstack.mail_sink --port 1025
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class PrintingHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        lines = [
            f"mail to {', '.join(envelope.rcpt_tos)}: {message['Subject']}",
            *(f"    {line}" for line in text.splitlines()[:12]),
        ]
        print("\n".join(lines), flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    controller = Controller(PrintingHandler(), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink listening on {args.host}:{args.port}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
