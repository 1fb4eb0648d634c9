"""Payments SQL (payments, ton_transactions, cursors, the referral bonus). Callers own the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec


class PaymentRow(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    method: str  # ton, stars, cryptobot
    status: str  # pending, confirmed, expired, failed, refunded
    amount_kop: int  # what the user asked to top up
    currency: str  # TON, XTR, RUB
    currency_amount: int  # nanotons, stars, kopecks: fixed when the payment is created
    credited_kop: int | None  # what the ledger got (TON may differ from amount_kop)
    external_id: str | None  # invoice id, charge id, first tx hash
    comment: str | None  # TON transfer comment
    pay_url: str | None
    details: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    confirmed_at: datetime | None


PAYMENT_COLUMNS = (
    "id, user_id, method, status, amount_kop, currency, currency_amount, credited_kop,"
    " external_id, comment, pay_url, details, created_at, expires_at, confirmed_at"
)

INSERT_PAYMENT = f"""
INSERT INTO payments
    (user_id, method, amount_kop, currency, currency_amount, expires_at, comment, external_id, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9::jsonb, '{{}}'::jsonb))
RETURNING {PAYMENT_COLUMNS}
"""

GET_PAYMENT = f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"

# The user's row lock serializes their concurrent invoice requests while they are counted.
LOCK_USER = "SELECT 1 FROM users WHERE id = $1 FOR UPDATE"
OPEN_OF_USER = """
SELECT count(*) FROM payments WHERE user_id = $1 AND status = 'pending' AND expires_at > now()
"""

LOCK_PAYMENT = f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"

GET_BY_EXTERNAL_ID = f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE method = $1 AND external_id = $2"

# Comments are stored upper-case; a payer may retype one in any case or with spaces.
LOCK_TON_BY_COMMENTS = f"""
SELECT {PAYMENT_COLUMNS} FROM payments
WHERE method = 'ton' AND comment = ANY($1::text[])
ORDER BY id
FOR UPDATE
"""

ATTACH_INVOICE = f"""
UPDATE payments SET external_id = coalesce($2, external_id), pay_url = coalesce($3, pay_url),
    details = details || coalesce($4::jsonb, '{{}}'::jsonb)
WHERE id = $1
RETURNING {PAYMENT_COLUMNS}
"""

# The payment and its user's language (for the message) in one round trip.
LOCK_PAYMENT_FOR_CONFIRM = f"""
SELECT {", ".join("p." + c.strip() for c in PAYMENT_COLUMNS.split(","))}, u.language
FROM payments p JOIN users u ON u.id = p.user_id
WHERE p.id = $1
FOR UPDATE OF p
"""

# The referee's confirmed top-ups have reached the minimum ($2 kopecks): the referral bonus
# is claimed once (`bonus_paid_at` flips here). Refunded payments count for nothing.
_REFERRAL_DUE = """
    r.bonus_paid_at IS NULL
    AND {credited} + (
        SELECT coalesce(sum(p.credited_kop), 0) FROM payments p
        WHERE p.user_id = r.referee_id AND p.status = 'confirmed' {other}
    ) >= {minimum}
"""

# Confirm, and in the same statement claim the referral bonus if this confirmation brings
# the referee's confirmed top-ups to the minimum ($5 kopecks; the CTE's snapshot does not
# see the payment's new state, so its credit is added by hand).
MARK_CONFIRMED = f"""
WITH confirmed AS (
    UPDATE payments
    SET status = 'confirmed', credited_kop = $2, confirmed_at = now(),
        external_id = coalesce($3, external_id),
        details = details || coalesce($4::jsonb, '{{}}'::jsonb)
    WHERE id = $1
    RETURNING {PAYMENT_COLUMNS}
),
claimed AS (
    UPDATE referrals r SET bonus_paid_at = now()
    FROM confirmed c
    WHERE r.referee_id = c.user_id
      AND {_REFERRAL_DUE.format(credited="c.credited_kop", other="AND p.id <> c.id", minimum="$5")}
    RETURNING r.referrer_id
)
SELECT confirmed.*, (SELECT referrer_id FROM claimed) AS referrer_id FROM confirmed
"""

# The same claim after more money reached an already confirmed payment (a further TON transfer).
CLAIM_REFERRAL = f"""
UPDATE referrals r SET bonus_paid_at = now()
WHERE r.referee_id = $1 AND {_REFERRAL_DUE.format(credited="0", other="", minimum="$2")}
RETURNING r.referrer_id
"""

ADD_CREDITED = f"""
UPDATE payments SET credited_kop = coalesce(credited_kop, 0) + $2
WHERE id = $1
RETURNING {PAYMENT_COLUMNS}
"""

MARK_REFUNDED = f"""
UPDATE payments SET status = 'refunded', details = details || coalesce($2::jsonb, '{{}}'::jsonb)
WHERE id = $1
RETURNING {PAYMENT_COLUMNS}
"""

# Only a still-pending payment fails; a late confirmation may still follow (the money arrived).
MARK_FAILED = f"""
UPDATE payments SET status = 'failed', details = details || coalesce($2::jsonb, '{{}}'::jsonb)
WHERE id = $1 AND status = 'pending'
RETURNING {PAYMENT_COLUMNS}
"""

LEDGER_ENTRY_BY_KEY = """
SELECT id, user_id, amount_kop, balance_after_kop, kind FROM ledger WHERE idempotency_key = $1
"""

USER_LANGUAGE = "SELECT language FROM users WHERE id = $1"


# --- TON ---------------------------------------------------------------------------------------

GET_CURSOR = "SELECT value FROM cursors WHERE name = $1"

# Never moves backwards, so a stale second watcher cannot rewind it.
ADVANCE_CURSOR = """
INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2::text, now())
ON CONFLICT (name) DO UPDATE
SET value = greatest(cursors.value::bigint, EXCLUDED.value::bigint)::text, updated_at = now()
"""

SET_CURSOR = """
INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2::text, now())
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
"""

# One statement for a whole page; only rows not seen before come back, so a
# transaction delivered twice is processed once.
INSERT_TON_TRANSACTIONS = """
INSERT INTO ton_transactions
    (hash, lt, source, amount_nanoton, comment, status, payment_id, utime, credited_kop, reason)
SELECT t.hash, t.lt, t.source, t.amount, t.comment, t.status, t.payment_id, to_timestamp(t.utime),
    t.credited_kop, t.reason
FROM unnest(
    $1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[],
    $9::bigint[], $10::text[]
) AS t(hash, lt, source, amount, comment, status, payment_id, utime, credited_kop, reason)
ON CONFLICT (hash) DO NOTHING
RETURNING hash
"""

UNMATCHED_TON_TRANSACTIONS = """
SELECT hash, lt, source, amount_nanoton, comment, utime, status, reason
FROM ton_transactions WHERE status IN ('unmatched', 'rejected') AND reviewed_at IS NULL
ORDER BY lt DESC LIMIT $1
"""

# An admin looked at an unmatched transfer and found nothing to credit (`orbit ton
# dismiss`): off the list, and deleted by housekeeping after 90 days.
DISMISS_TON_TRANSACTION = """
UPDATE ton_transactions SET reviewed_at = coalesce(reviewed_at, orbit_now())
WHERE hash = $1 AND status IN ('unmatched', 'rejected')
RETURNING hash
"""

LOCK_TON_TRANSACTION = """
SELECT hash, lt, source, amount_nanoton, comment, utime, status
FROM ton_transactions WHERE hash = $1 FOR UPDATE
"""

MARK_TON_TRANSACTION_MATCHED = """
UPDATE ton_transactions SET status = 'matched', credited_kop = $2, reason = NULL WHERE hash = $1
"""


def _row(record: asyncpg.Record | None) -> PaymentRow | None:
    return None if record is None else PaymentRow(**dict(record))


async def insert_payment(
    conn: asyncpg.Connection,
    user_id: int,
    method: str,
    amount_kop: int,
    currency: str,
    currency_amount: int,
    expires_at: datetime,
    comment: str | None,
    external_id: str | None,
    details: dict[str, Any] | None,
) -> PaymentRow:
    record = await conn.fetchrow(
        INSERT_PAYMENT,
        user_id,
        method,
        amount_kop,
        currency,
        currency_amount,
        expires_at,
        comment,
        external_id,
        details,
    )
    row = _row(record)
    assert row is not None
    return row


async def lock_user_and_count_open(conn: asyncpg.Connection, user_id: int) -> int:
    """Lock the user's row (for the rest of the transaction) and count their pending,
    unexpired payments."""
    await conn.execute(LOCK_USER, user_id)
    return int(await conn.fetchval(OPEN_OF_USER, user_id))


async def get_payment(conn: asyncpg.Connection | asyncpg.Pool, payment_id: int) -> PaymentRow | None:
    return _row(await conn.fetchrow(GET_PAYMENT, payment_id))


async def lock_payment(conn: asyncpg.Connection, payment_id: int) -> PaymentRow | None:
    return _row(await conn.fetchrow(LOCK_PAYMENT, payment_id))


async def get_by_external_id(
    conn: asyncpg.Connection | asyncpg.Pool, method: str, external_id: str
) -> PaymentRow | None:
    return _row(await conn.fetchrow(GET_BY_EXTERNAL_ID, method, external_id))


async def lock_ton_by_comments(conn: asyncpg.Connection, comments: list[str]) -> list[PaymentRow]:
    return [PaymentRow(**dict(r)) for r in await conn.fetch(LOCK_TON_BY_COMMENTS, comments)]


async def attach_invoice(
    conn: asyncpg.Connection,
    payment_id: int,
    external_id: str | None,
    pay_url: str | None,
    details: dict[str, Any] | None,
) -> PaymentRow | None:
    return _row(await conn.fetchrow(ATTACH_INVOICE, payment_id, external_id, pay_url, details))


async def lock_payment_for_confirm(
    conn: asyncpg.Connection, payment_id: int
) -> tuple[PaymentRow, str] | None:
    """The locked payment and its user's language."""
    record = await conn.fetchrow(LOCK_PAYMENT_FOR_CONFIRM, payment_id)
    if record is None:
        return None
    fields = dict(record)
    language = fields.pop("language")
    return PaymentRow(**fields), language


async def mark_confirmed(
    conn: asyncpg.Connection,
    payment_id: int,
    credited_kop: int,
    external_id: str | None,
    details: dict[str, Any] | None,
    referral_min_kop: int,
) -> tuple[PaymentRow, int | None]:
    """The confirmed payment, and the referrer whose bonus this confirmation claimed."""
    record = await conn.fetchrow(
        MARK_CONFIRMED, payment_id, credited_kop, external_id, details, referral_min_kop
    )
    assert record is not None
    fields = dict(record)
    referrer_id = fields.pop("referrer_id")
    return PaymentRow(**fields), referrer_id


async def claim_referral(conn: asyncpg.Connection, referee_id: int, min_kop: int) -> int | None:
    """The referrer whose bonus is due now (claimed in this call), if any."""
    return await conn.fetchval(CLAIM_REFERRAL, referee_id, min_kop)


async def add_credited(conn: asyncpg.Connection, payment_id: int, amount_kop: int) -> PaymentRow:
    row = _row(await conn.fetchrow(ADD_CREDITED, payment_id, amount_kop))
    assert row is not None
    return row


async def mark_refunded(
    conn: asyncpg.Connection, payment_id: int, details: dict[str, Any] | None
) -> PaymentRow:
    row = _row(await conn.fetchrow(MARK_REFUNDED, payment_id, details))
    assert row is not None
    return row


async def mark_failed(
    conn: asyncpg.Connection, payment_id: int, details: dict[str, Any] | None
) -> PaymentRow | None:
    return _row(await conn.fetchrow(MARK_FAILED, payment_id, details))


async def ledger_entry(conn: asyncpg.Connection, idempotency_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(LEDGER_ENTRY_BY_KEY, idempotency_key)


async def user_language(conn: asyncpg.Connection, user_id: int) -> str:
    return await conn.fetchval(USER_LANGUAGE, user_id) or "en"


async def get_cursor(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> str | None:
    return await conn.fetchval(GET_CURSOR, name)


async def advance_cursor(conn: asyncpg.Connection, name: str, value: int) -> None:
    await conn.execute(ADVANCE_CURSOR, name, str(value))


async def set_cursor(conn: asyncpg.Connection | asyncpg.Pool, name: str, value: int) -> None:
    await conn.execute(SET_CURSOR, name, str(value))

# --- audit (`orbit audit`) -------------------------------------------------------------------

# The last entry of each user must carry the balance the user has now.
AUDIT_LAST_ENTRY = """
SELECT u.id, u.balance_kop, l.balance_after_kop
FROM users u
JOIN LATERAL (
    SELECT balance_after_kop FROM ledger WHERE user_id = u.id ORDER BY id DESC LIMIT 1
) l ON true
WHERE l.balance_after_kop <> u.balance_kop
ORDER BY u.id
"""

# A confirmed (or since refunded) payment has its credit; the credit equals `credited_kop`.
AUDIT_PAYMENT_CREDITS = """
SELECT p.id, p.user_id, p.status, p.credited_kop, coalesce(l.total, 0) AS ledger_kop
FROM payments p
LEFT JOIN (
    SELECT payment_id, sum(amount_kop) AS total FROM ledger
    WHERE kind = 'topup' AND payment_id IS NOT NULL GROUP BY payment_id
) l ON l.payment_id = p.id
WHERE (p.status IN ('confirmed', 'refunded') AND coalesce(l.total, 0) <> coalesce(p.credited_kop, -1))
   OR (p.status NOT IN ('confirmed', 'refunded') AND l.total IS NOT NULL)
ORDER BY p.id
"""

# A TON payment's top-ups are exactly what its matched transfers are worth (as each was
# credited), entry for transfer.
AUDIT_TON_PAYMENT_TRANSFERS = """
SELECT p.id, p.user_id, coalesce(l.total, 0) AS ledger_kop, coalesce(l.n, 0) AS entries,
    coalesce(t.total, 0) AS transfers_kop, coalesce(t.n, 0) AS transfers
FROM payments p
LEFT JOIN (
    SELECT payment_id, sum(amount_kop) AS total, count(*) AS n FROM ledger
    WHERE kind = 'topup' AND payment_id IS NOT NULL GROUP BY payment_id
) l ON l.payment_id = p.id
LEFT JOIN (
    SELECT payment_id, sum(credited_kop) AS total, count(*) AS n FROM ton_transactions
    WHERE status = 'matched' AND payment_id IS NOT NULL GROUP BY payment_id
) t ON t.payment_id = p.id
WHERE p.method = 'ton'
  AND (coalesce(l.total, 0) <> coalesce(t.total, 0) OR coalesce(l.n, 0) <> coalesce(t.n, 0))
ORDER BY p.id
"""

# Each stored transfer is credited at most once: a matched one by exactly one ledger entry
# of its worth (key ton:{hash}, or payment:{id} for the transfer that confirmed the
# payment), any other by none; and never above its worth at its payment's fixed rate.
AUDIT_TON_TRANSFER_CREDITS = """
WITH credits AS (
    SELECT t.hash, l.amount_kop FROM ton_transactions t
    JOIN ledger l ON l.idempotency_key = 'ton:' || t.hash
    UNION ALL
    SELECT t.hash, l.amount_kop FROM ton_transactions t
    JOIN payments p ON p.id = t.payment_id AND p.external_id = t.hash
    JOIN ledger l ON l.idempotency_key = 'payment:' || p.id
)
SELECT t.hash, t.status, t.payment_id, t.credited_kop, count(c.hash) AS credits,
    coalesce(sum(c.amount_kop), 0) AS ledger_kop,
    floor(t.amount_nanoton::numeric * p.amount_kop / p.currency_amount)::bigint AS worth_kop
FROM ton_transactions t
LEFT JOIN payments p ON p.id = t.payment_id
LEFT JOIN credits c ON c.hash = t.hash
GROUP BY t.hash, p.id
HAVING (t.status = 'matched'
        AND (count(c.hash) <> 1 OR coalesce(sum(c.amount_kop), 0) <> coalesce(t.credited_kop, -1)
             OR t.credited_kop > floor(t.amount_nanoton::numeric * p.amount_kop / p.currency_amount)))
    OR (t.status <> 'matched' AND count(c.hash) > 0)
ORDER BY t.lt
"""

# A transfer made long before the first TON payment existed cannot pay one: the
# wallet's old history is stored as `ignored` instead of flooding `unmatched`.
EARLIEST_TON_PAYMENT = "SELECT min(created_at) FROM payments WHERE method = 'ton'"


# --- reconciliation (`orbit reconcile`, the janitor) -----------------------------------------

# The state of a Stars refund: `unconfirmed` while Telegram's answer is unknown.
SET_REFUND_STATE = f"""
UPDATE payments SET details = details || jsonb_build_object('refund_state', $2::text)
WHERE id = $1
RETURNING {PAYMENT_COLUMNS}
"""

UNCONFIRMED_REFUNDS = f"""
SELECT {PAYMENT_COLUMNS} FROM payments
WHERE method = $1 AND status = 'refunded' AND details->>'refund_state' = 'unconfirmed'
ORDER BY id
LIMIT $2
"""

# Which of these external ids a payment of `method` already carries.
KNOWN_EXTERNAL_IDS = """
SELECT external_id, status FROM payments WHERE method = $1 AND external_id = ANY($2::text[])
"""

# Invoices that may have been paid without our hearing of it: not yet credited, recent.
UNCREDITED_INVOICE_IDS = """
SELECT external_id FROM payments
WHERE method = $1 AND status IN ('pending', 'expired', 'failed') AND external_id IS NOT NULL
  AND created_at > now() - make_interval(days => $2)
ORDER BY id
"""

RECORD_ISSUE = """
INSERT INTO reconcile_issues (source, subject, kind, user_id, amount_kop, detail)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (source, subject, kind) DO NOTHING
RETURNING id
"""

RESOLVE_ISSUE = """
UPDATE reconcile_issues SET resolved_at = now()
WHERE source = $1 AND subject = $2 AND kind = $3 AND resolved_at IS NULL
"""

EARLIEST_PAYMENT = "SELECT min(created_at) FROM payments WHERE method = $1"

# Subjects already reported as `kind`: asking again would only log the same error again.
REPORTED_SUBJECTS = """
SELECT subject FROM reconcile_issues WHERE source = $1 AND kind = $2 AND subject = ANY($3::text[])
"""

OPEN_ISSUES = """
SELECT id, source, subject, kind, user_id, amount_kop, detail, created_at
FROM reconcile_issues WHERE resolved_at IS NULL ORDER BY id LIMIT $1
"""


async def set_refund_state(conn: asyncpg.Connection, payment_id: int, state: str) -> PaymentRow:
    row = _row(await conn.fetchrow(SET_REFUND_STATE, payment_id, state))
    assert row is not None
    return row


async def unconfirmed_refunds(
    conn: asyncpg.Connection | asyncpg.Pool, method: str, limit: int
) -> list[PaymentRow]:
    return [PaymentRow(**dict(r)) for r in await conn.fetch(UNCONFIRMED_REFUNDS, method, limit)]


async def known_external_ids(
    conn: asyncpg.Connection | asyncpg.Pool, method: str, external_ids: list[str]
) -> dict[str, str]:
    """external id → the status of the payment carrying it."""
    rows = await conn.fetch(KNOWN_EXTERNAL_IDS, method, external_ids)
    return {r["external_id"]: r["status"] for r in rows}


async def uncredited_invoice_ids(
    conn: asyncpg.Connection | asyncpg.Pool, method: str, days: int
) -> list[str]:
    return [r["external_id"] for r in await conn.fetch(UNCREDITED_INVOICE_IDS, method, days)]


async def record_issue(
    conn: asyncpg.Connection,
    source: str,
    subject: str,
    kind: str,
    user_id: int | None,
    amount_kop: int | None,
    detail: str,
) -> int | None:
    """The new issue's id; None when the same fact was reported before."""
    return await conn.fetchval(RECORD_ISSUE, source, subject, kind, user_id, amount_kop, detail)


async def resolve_issue(conn: asyncpg.Connection, source: str, subject: str, kind: str) -> None:
    await conn.execute(RESOLVE_ISSUE, source, subject, kind)


async def reported_subjects(
    conn: asyncpg.Connection | asyncpg.Pool, source: str, kind: str, subjects: list[str]
) -> set[str]:
    return {r["subject"] for r in await conn.fetch(REPORTED_SUBJECTS, source, kind, subjects)}


async def open_issues(conn: asyncpg.Connection | asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(OPEN_ISSUES, limit)
