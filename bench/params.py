"""The sizes of each mode. Full is what the issue asks for; quick is a smoke run that finishes in about a minute."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Params:
    mode: str
    # 1. scheduling latency
    scheduling_posts: int
    scheduling_concurrency: int
    scheduling_warmup: int
    # Requests alternate between the API and bare starts in blocks of this size, so both see the same machine
    # (the same growing databases, the same background work) rather than one going first.
    scheduling_block: int
    # 2. punctuality
    punctuality_posts: int
    punctuality_accounts: int
    punctuality_window_s: float
    punctuality_lead_s: float
    # 3. burst
    burst_posts: int
    burst_accounts: int
    burst_lead_s: float
    burst_bare_lead_s: float
    # 4. idle cost
    idle_posts: int
    idle_window_s: float
    idle_settle_s: float
    list_requests: int
    # 5. media
    media_bytes: int
    media_uploads: int
    # 6. uploads under pressure: concurrent uploads (one user each) of this size; slow uploads (2 KB/s) and the
    # window over which another user's list requests are measured while they stream in
    upload_concurrency: int
    upload_bytes: int
    slow_uploads: int
    slow_window_s: float
    # posts are created through the API by this many concurrent clients (outside the measured scheduling runs)
    create_concurrency: int = 16
    # 7. best times: published posts with readings on one account, and the requests timed
    insights_posts: int = 10_000
    insights_requests: int = 200
    # 8. scale-out (only when named: --only scaleout): a burst over two workers and two APIs, one worker killed
    # once this share of the posts is published
    scaleout_posts: int = 1000
    scaleout_accounts: int = 100
    scaleout_lead_s: float = 150
    scaleout_kill_at: float = 0.25
    # 7. templates: renders through the API, then posts created from the template
    template_renders: int = 2000
    template_posts: int = 200
    # 7. chaos: posts on accounts, due over a window that opens after the lead; meanwhile worker SIGKILLs, one
    # Temporal restart, reschedules and cancels, and this share of Graph calls faulted
    chaos_posts: int = 200
    chaos_accounts: int = 20
    chaos_window_s: float = 240
    # Creating 200 posts and preparing them (with faults) takes 30-90 s on two busy cores: all ready by the window.
    chaos_lead_s: float = 120
    chaos_kills: int = 6
    chaos_reschedules: int = 20
    chaos_cancels: int = 20
    chaos_fault_share: float = 0.10

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def with_changes(self, assignments: Iterable[str]) -> Params:
        """``NAME=VALUE`` strings applied to a copy; the value is converted to the field's type."""
        types = {
            field.name: type(getattr(self, field.name)) for field in fields(self) if field.name != "mode"
        }
        changes: dict[str, Any] = {}
        for assignment in assignments:
            name, _, value = assignment.partition("=")
            if name not in types or not value:
                raise SystemExit(
                    f"--param {assignment!r}: expected NAME=VALUE with NAME one of {', '.join(types)}"
                )
            changes[name] = types[name](value)
        return replace(self, **changes) if changes else self


FULL = Params(
    mode="full",
    scheduling_posts=2000,
    scheduling_concurrency=16,
    scheduling_warmup=50,
    scheduling_block=250,
    punctuality_posts=200,
    punctuality_accounts=50,
    punctuality_window_s=120,
    # Creating and preparing 200 posts takes 15-30 s on two cores, more on a busy machine.
    punctuality_lead_s=45,
    burst_posts=1000,
    burst_accounts=100,
    # Creating and preparing 1,000 posts takes 100-120 s on two cores (dev server or production server), and the
    # wake-ups begin up to 75 s ahead: all must be prepared before they begin.
    burst_lead_s=210,
    # The bare workflows run their 4 activities before the timer: 1,000 of them take 60-80 s on the production server.
    burst_bare_lead_s=90,
    idle_posts=10_000,
    idle_window_s=60,
    idle_settle_s=20,
    list_requests=500,
    media_bytes=10_000_000,
    media_uploads=5,
    upload_concurrency=100,
    upload_bytes=3_000_000,
    slow_uploads=50,
    slow_window_s=10,
)

QUICK = Params(
    mode="quick",
    scheduling_posts=20,
    scheduling_concurrency=4,
    scheduling_warmup=3,
    scheduling_block=10,
    punctuality_posts=10,
    punctuality_accounts=5,
    punctuality_window_s=5,
    punctuality_lead_s=5,
    burst_posts=20,
    burst_accounts=5,
    # Posts begin publishing at least 10 s ahead of their time (the held publish): created earlier than that, they
    # sleep on a timer before it, as in the full run.
    burst_lead_s=20,
    burst_bare_lead_s=4,
    idle_posts=60,
    idle_window_s=3,
    idle_settle_s=2,
    list_requests=20,
    media_bytes=10_000_000,
    media_uploads=1,
    upload_concurrency=10,
    upload_bytes=3_000_000,
    slow_uploads=10,
    slow_window_s=2,
    create_concurrency=4,
    insights_posts=300,
    insights_requests=20,
    scaleout_posts=40,
    scaleout_accounts=5,
    scaleout_lead_s=15,
    template_renders=50,
    template_posts=10,
    chaos_posts=20,
    chaos_accounts=4,
    chaos_window_s=40,
    chaos_lead_s=25,
    chaos_kills=2,
    chaos_reschedules=2,
    chaos_cancels=2,
)
