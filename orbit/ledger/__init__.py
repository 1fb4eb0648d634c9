"""The append-only ledger: every balance change is one row with an idempotency key.

`apply()` must run inside the caller's transaction so the ledger row commits or
rolls back together with the fact it pays for (a payment, a purchase, a promo).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from orbit import metrics
from orbit.ledger import queries


class InsufficientFunds(Exception):
    def __init__(self, balance_kop: int, needed_kop: int) -> None:
        super().__init__(f"balance {balance_kop} < {needed_kop}")
        self.balance_kop = balance_kop
        self.needed_kop = needed_kop

    @property
    def missing_kop(self) -> int:
        return self.needed_kop - self.balance_kop


class UnknownUser(Exception):
    pass


class Entry(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    amount_kop: int
    balance_after_kop: int
    kind: str
    replayed: bool  # the key was seen before: nothing changed, this is the first result


async def apply(
    conn: asyncpg.Connection,
    user_id: int,
    amount_kop: int,
    kind: str,
    idempotency_key: str,
    *,
    payment_id: int | None = None,
    purchase_id: int | None = None,
    note: str | None = None,
) -> Entry:
    """Change a balance by `amount_kop` (credit > 0, debit < 0) exactly once per key.

    A repeated key returns the first entry with `replayed=True` and changes
    nothing. A debit larger than the balance raises `InsufficientFunds`.
    """
    if amount_kop == 0:
        raise ValueError("a ledger entry must move money")
    if not conn.is_in_transaction():
        raise RuntimeError("ledger.apply must run inside the caller's transaction")
    # Serialize writers of the same key so the second one sees the first's row.
    await conn.execute(queries.LOCK_KEY, idempotency_key)
    row = await conn.fetchrow(
        queries.APPLY,
        user_id,
        amount_kop,
        idempotency_key,
        kind,
        payment_id,
        purchase_id,
        note,
    )
    assert row is not None
    if row["entry_id"] is not None:
        if not row["replayed"]:
            metrics.count("ledger_entries_total", reason=kind)  # kinds are the code's: bounded
        return Entry(
            row["entry_id"], user_id, amount_kop, row["balance_after_kop"], kind, row["replayed"]
        )
    if row["balance_kop"] is None:
        raise UnknownUser(user_id)
    raise InsufficientFunds(row["balance_kop"], -amount_kop)


async def credit(conn: asyncpg.Connection, user_id: int, amount_kop: int, kind: str,
                 idempotency_key: str, **refs: object) -> Entry:
    if amount_kop <= 0:
        raise ValueError("a credit must be positive")
    return await apply(conn, user_id, amount_kop, kind, idempotency_key, **refs)  # type: ignore[arg-type]


async def debit(conn: asyncpg.Connection, user_id: int, amount_kop: int, kind: str,
                idempotency_key: str, **refs: object) -> Entry:
    if amount_kop <= 0:
        raise ValueError("a debit must be positive")
    return await apply(conn, user_id, -amount_kop, kind, idempotency_key, **refs)  # type: ignore[arg-type]


class HistoryEntry(msgspec.Struct, frozen=True):
    amount_kop: int  # signed
    kind: str
    created_at: datetime


async def history(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, limit: int = 5
) -> list[HistoryEntry]:
    """The user's latest entries, newest first."""
    return [HistoryEntry(**dict(r)) for r in await conn.fetch(queries.RECENT, user_id, limit)]
