"""chronogram.accounts, the one owner of an account's status: on SQLite and PostgreSQL, each change one event, a
failure of a token already replaced marks nothing, and expiring is derived from the expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from chronogram import accounts
from chronogram.accounts import TokenSchedule
from chronogram.crypto import TokenCipher
from chronogram.enums import AccountEventKind, AccountStatus, AccountStatusReason
from chronogram.models import AccountEvent, InstagramAccount
from tests.support.factories import add_account, add_user, id_of

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LEAD = timedelta(days=7)
SCHEDULE = TokenSchedule(lead=LEAD, min_age=timedelta(hours=24))


def _account(engine: Engine, cipher: TokenCipher, **fields: datetime | None) -> int:
    with Session(engine) as session:
        row = add_account(session, add_user(session), cipher, **fields)  # type: ignore[arg-type]
        account_id = id_of(row)
        session.commit()
    return account_id


def _row(engine: Engine, account_id: int) -> InstagramAccount:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(InstagramAccount, account_id)
        assert row is not None
        return row


def _events(engine: Engine, account_id: int) -> list[AccountEvent]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AccountEvent)
                .where(AccountEvent.account_id == account_id)
                .order_by(col(AccountEvent.id))
            ).all()
        )


def test_refresh_is_due_a_lead_before_expiry_and_never_before_the_minimum_age() -> None:
    expires = NOW + timedelta(days=60)
    assert accounts.refresh_due_at(expires_at=expires, issued_at=NOW, schedule=SCHEDULE) == expires - LEAD
    short = NOW + timedelta(days=3)  # shorter than the lead: as soon as Meta allows
    assert accounts.refresh_due_at(expires_at=short, issued_at=NOW, schedule=SCHEDULE) == NOW + timedelta(
        hours=24
    )
    unknown = accounts.refresh_due_at(expires_at=None, issued_at=NOW, schedule=SCHEDULE)
    assert unknown == NOW + timedelta(hours=24)


def test_status_is_derived_from_the_expiry_until_marked(engine: Engine, cipher: TokenCipher) -> None:
    account_id = _account(engine, cipher, token_expires_at=NOW + timedelta(days=30))
    row = _row(engine, account_id)
    assert accounts.status_of(row, now=NOW, lead=LEAD).status is AccountStatus.ACTIVE
    view = accounts.status_of(row, now=NOW + timedelta(days=25), lead=LEAD)
    assert (view.status, view.reason) == (AccountStatus.EXPIRING, AccountStatusReason.EXPIRY_NEAR)
    view = accounts.status_of(row, now=NOW + timedelta(days=31), lead=LEAD)
    assert (view.status, view.reason) == (AccountStatus.NEEDS_RECONNECT, AccountStatusReason.TOKEN_EXPIRED)


def test_marking_and_replacing_write_one_event_each(engine: Engine, cipher: TokenCipher) -> None:
    account_id = _account(engine, cipher)
    before = _row(engine, account_id).updated_at
    with engine.begin() as connection:
        # The account changed after the failed call began (a reconnect): nothing is marked.
        assert not accounts.mark_needs_reconnect(
            connection,
            account_id,
            reason=AccountStatusReason.TOKEN_INVALID,
            detail="revoked",
            now=before,
            unchanged_since=before - timedelta(seconds=1),
        )
        assert accounts.mark_needs_reconnect(
            connection,
            account_id,
            reason=AccountStatusReason.PERMISSION_MISSING,
            detail="the instagram_business_content_publish permission was withdrawn",
            now=before + timedelta(seconds=1),
            unchanged_since=before,
        )
        # Already marked: a second failure adds nothing.
        assert not accounts.mark_needs_reconnect(
            connection, account_id, reason=AccountStatusReason.TOKEN_INVALID, detail="x", now=before
        )
    row = _row(engine, account_id)
    assert row.status is AccountStatus.NEEDS_RECONNECT
    assert row.status_reason is AccountStatusReason.PERMISSION_MISSING
    view = accounts.status_of(row, now=NOW, lead=LEAD)
    assert view.status is AccountStatus.NEEDS_RECONNECT and view.detail == row.status_detail

    expires = before + timedelta(days=60)
    with engine.begin() as connection:
        assert accounts.replace_token(
            connection,
            account_id,
            token_ciphertext=cipher.encrypt("IGAAnew"),
            expires_at=expires,
            now=before + timedelta(seconds=2),
            kind=AccountEventKind.RECONNECTED,
            message="reconnected",
        )
        # A refresh of the token that was replaced: nothing written.
        assert not accounts.replace_token(
            connection,
            account_id,
            token_ciphertext=cipher.encrypt("IGAAstale"),
            expires_at=expires,
            now=before + timedelta(seconds=3),
            kind=AccountEventKind.TOKEN_REFRESHED,
            message="refreshed",
            expected_ciphertext=cipher.encrypt("IGAAold"),
        )
    row = _row(engine, account_id)
    assert (
        row.status is AccountStatus.ACTIVE and row.status_reason is None and row.token_expires_at == expires
    )
    assert cipher.decrypt(row.access_token_ciphertext).get_secret_value() == "IGAAnew"
    events = _events(engine, account_id)
    assert [e.kind for e in events] == [AccountEventKind.NEEDS_RECONNECT, AccountEventKind.RECONNECTED]
    assert events[0].reason is AccountStatusReason.PERMISSION_MISSING
    assert all("IGAA" not in e.message for e in events)


def test_an_event_with_a_dedupe_key_is_recorded_once(engine: Engine, cipher: TokenCipher) -> None:
    account_id = _account(engine, cipher)
    for _ in range(2):
        with engine.begin() as connection:
            accounts.record_event(
                connection,
                account_id,
                kind=AccountEventKind.TOKEN_REFRESHED,
                message="refreshed",
                now=NOW,
                dedupe_key=f"run-{account_id}:refresh",
            )
    assert len(_events(engine, account_id)) == 1
