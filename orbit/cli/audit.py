"""`orbit audit`: prove `balance == sum(ledger)` and `balance >= 0` for every user,
and that each confirmed payment got exactly its credit. Exit 1 on any mismatch."""

from __future__ import annotations

import argparse

import msgspec

from orbit.connections import create_pool
from orbit.payments.audit import audit
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="check every balance against the ledger")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn:
            mismatches = await audit(conn)
            users = await conn.fetchval("SELECT count(*) FROM users")
    finally:
        await pool.close()
    if args.json:
        print(msgspec.json.encode({"ok": not mismatches, "users": users, "mismatches": mismatches}).decode())  # noqa: T201
    else:
        for mismatch in mismatches:
            print(mismatch)  # noqa: T201
        verdict = f"{len(mismatches)} mismatch(es)" if mismatches else "all balances match the ledger"
        print(f"audited {users} users: {verdict}")  # noqa: T201
    return 1 if mismatches else 0
