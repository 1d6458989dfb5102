"""The webhook URL policy (server-side request forgery) and Standard Webhooks signing, without a network: IP
literals and localhost only."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from chronogram.notifications.signing import new_secret, signed_headers
from chronogram.notifications.url_policy import UrlPolicy, UrlRefused

STRICT = UrlPolicy(allow_http_localhost=False, allowed_networks=())
DEV = UrlPolicy(allow_http_localhost=True, allowed_networks=())
ALLOW_10 = UrlPolicy(allow_http_localhost=False, allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))


@pytest.mark.parametrize(
    ("policy", "url", "code"),
    [
        (STRICT, "http://localhost:9999/", "webhook_url_not_https"),
        (DEV, "http://example.com/", "webhook_url_not_https"),
        (STRICT, "https://127.0.0.1/", "webhook_url_forbidden"),
        (STRICT, "https://localhost/", "webhook_url_forbidden"),
        (STRICT, "https://10.0.0.5/", "webhook_url_forbidden"),
        (STRICT, "https://192.168.1.1/", "webhook_url_forbidden"),
        (STRICT, "https://169.254.169.254/", "webhook_url_forbidden"),
        (STRICT, "https://[fe80::1]/", "webhook_url_forbidden"),
        (STRICT, "https://[::1]/", "webhook_url_forbidden"),
        (STRICT, "https://[::ffff:127.0.0.1]/", "webhook_url_forbidden"),
        (STRICT, "https://0.0.0.0/", "webhook_url_forbidden"),
        (STRICT, "https://224.0.0.1/", "webhook_url_forbidden"),
        (ALLOW_10, "https://10.0.0.5:8443/", None),
        (ALLOW_10, "https://192.168.1.1/", "webhook_url_forbidden"),
        (DEV, "http://localhost:9999/hook", None),
        (DEV, "http://127.0.0.1:9999/hook", None),
        (STRICT, "https://8.8.8.8/hook", None),
        (STRICT, "https://u:p@8.8.8.8/", "webhook_url_invalid"),
        (STRICT, "https:///nohost", "webhook_url_invalid"),
        (STRICT, "https://8.8.8.8:99999/", "webhook_url_invalid"),
        (STRICT, "javascript:alert(1)", "webhook_url_invalid"),
    ],
)
async def test_url_policy(policy: UrlPolicy, url: str, code: str | None) -> None:
    if code is None:
        await policy.check(url)
    else:
        with pytest.raises(UrlRefused) as refused:
            await policy.check(url)
        assert refused.value.code == code


def test_signatures_verify_with_the_reference_library_and_carry_one_per_secret() -> None:
    old, new = new_secret(), new_secret()
    assert new.get_secret_value().startswith("whsec_") and old != new
    body = '{"id":"evt_1","type":"webhook.test"}'
    headers = signed_headers(
        event_id="evt_1", timestamp=datetime.now(UTC), body=body, secrets_in_use=[new, old]
    )
    assert headers["webhook-id"] == "evt_1" and len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret.get_secret_value()).verify(body, headers) == {
            "id": "evt_1",
            "type": "webhook.test",
        }
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret().get_secret_value()).verify(body, headers)
    with pytest.raises(ValueError):
        signed_headers(event_id="evt_1", timestamp=datetime.now(UTC), body=body, secrets_in_use=[])
