"""A webhook receiver for trying Chronogram's webhooks locally: verifies each delivery's signature with the
standardwebhooks library, as a client's server would, and prints the event.

    .venv/bin/python -m scripts.webhook_receiver --port 9999 --secret whsec_...

Answers 204 to a verified delivery and 400 to anything else (``--status 503`` plays a receiver that is down).
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--secret", required=True, help="the webhook's signing secret (whsec_...)")
    parser.add_argument("--status", type=int, default=204, help="what to answer a verified delivery")
    args = parser.parse_args(argv)
    verifier = Webhook(args.secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                event = verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
            except WebhookVerificationError as error:
                print(f"REFUSED ({error})", flush=True)
                self.send_response(400)
            else:
                print(
                    f"{self.headers['webhook-id']} {event['type']}: {json.dumps(event['data'])}", flush=True
                )
                self.send_response(args.status)
            self.end_headers()

        def log_message(self, format: str, *values: object) -> None:
            pass  # one line per event, printed above

    print(f"listening on http://localhost:{args.port}/", flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
