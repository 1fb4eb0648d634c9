"""`orbit audit`: every balance is the sum of its ledger, never negative, every
confirmed payment is credited exactly what it says, and every TON payment exactly what
its stored transfers are worth, each transfer credited at most once."""

from __future__ import annotations

import asyncpg
import msgspec

from orbit.ledger import queries as ledger_queries
from orbit.money import format_rub
from orbit.payments import queries


class Mismatch(msgspec.Struct, frozen=True):
    check: str  # balance, last_entry, payment, ton_payment, ton_transfer
    subject: str  # "user 42", "payment 7"
    detail: str

    def __str__(self) -> str:
        return f"{self.check:<10} {self.subject:<16} {self.detail}"


async def audit(conn: asyncpg.Connection) -> list[Mismatch]:
    """Every inconsistency found, in one repeatable-read snapshot; empty means all is well."""
    found: list[Mismatch] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for r in await conn.fetch(ledger_queries.MISMATCHES):
            problem = "negative balance" if r["balance_kop"] < 0 else "balance differs from the ledger"
            found.append(
                Mismatch(
                    "balance",
                    f"user {r['id']}",
                    f"{problem}: balance {format_rub(r['balance_kop'])}, "
                    f"ledger {format_rub(r['ledger_kop'])}",
                )
            )
        for r in await conn.fetch(queries.AUDIT_LAST_ENTRY):
            found.append(
                Mismatch(
                    "last_entry",
                    f"user {r['id']}",
                    f"balance {format_rub(r['balance_kop'])}, last entry says "
                    f"{format_rub(r['balance_after_kop'])}",
                )
            )
        for r in await conn.fetch(queries.AUDIT_PAYMENT_CREDITS):
            credited = "none" if r["credited_kop"] is None else format_rub(r["credited_kop"])
            found.append(
                Mismatch(
                    "payment",
                    f"payment {r['id']}",
                    f"user {r['user_id']}, {r['status']}, credited_kop {credited}, "
                    f"ledger top-ups {format_rub(r['ledger_kop'])}",
                )
            )
        for r in await conn.fetch(queries.AUDIT_TON_PAYMENT_TRANSFERS):
            found.append(
                Mismatch(
                    "ton_payment",
                    f"payment {r['id']}",
                    f"user {r['user_id']}, ledger top-ups {format_rub(r['ledger_kop'])} in {r['entries']}"
                    f" entries, its matched transfers {format_rub(r['transfers_kop'])}"
                    f" in {r['transfers']} transfers",
                )
            )
        for r in await conn.fetch(queries.AUDIT_TON_TRANSFER_CREDITS):
            found.append(Mismatch("ton_transfer", f"tx {r['hash']}", _transfer_detail(r)))
    return found


def _transfer_detail(r: asyncpg.Record) -> str:
    stored = "none" if r["credited_kop"] is None else format_rub(r["credited_kop"])
    payment = f"payment {r['payment_id']}" if r["payment_id"] is not None else "no payment"
    detail = (
        f"{r['status']}, {payment}, credited {r['credits']} times ({format_rub(r['ledger_kop'])} RUB),"
        f" stored credit {stored}"
    )
    worth = r["worth_kop"]
    if worth is not None and r["credited_kop"] is not None and r["credited_kop"] > worth:
        detail += f", more than its {format_rub(worth)} RUB at the payment's rate"
    return detail
