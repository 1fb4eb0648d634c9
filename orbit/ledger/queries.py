"""Ledger SQL. Callers own the transaction."""

from __future__ import annotations

LOCK_KEY = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# One statement: replay an existing key, or move the balance (never below zero)
# and append the entry. `balance_kop` is returned so a refused debit can say
# how much is missing.
APPLY = """
WITH existing AS (
    SELECT id, balance_after_kop FROM ledger WHERE idempotency_key = $3
),
moved AS (
    UPDATE users SET balance_kop = balance_kop + $2
    WHERE id = $1 AND balance_kop + $2 >= 0 AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING balance_kop
),
entry AS (
    INSERT INTO ledger
        (user_id, amount_kop, balance_after_kop, kind, idempotency_key,
         payment_id, purchase_id, note)
    SELECT $1, $2, moved.balance_kop, $4, $3, $5, $6, $7 FROM moved
    RETURNING id, balance_after_kop
)
SELECT
    coalesce((SELECT id FROM entry), (SELECT id FROM existing)) AS entry_id,
    coalesce((SELECT balance_after_kop FROM entry),
             (SELECT balance_after_kop FROM existing)) AS balance_after_kop,
    EXISTS (SELECT 1 FROM existing) AS replayed,
    (SELECT balance_kop FROM users WHERE id = $1) AS balance_kop
"""

# `orbit audit`: users whose balance differs from the sum of their ledger.
MISMATCHES = """
SELECT u.id, u.balance_kop, coalesce(l.total, 0) AS ledger_kop
FROM users u
LEFT JOIN (SELECT user_id, sum(amount_kop) AS total FROM ledger GROUP BY user_id) l
    ON l.user_id = u.id
WHERE u.balance_kop <> coalesce(l.total, 0) OR u.balance_kop < 0
ORDER BY u.id
"""

# The balance screen's recent operations (ix_ledger_user_id_created_at).
RECENT = """
SELECT amount_kop, kind, created_at FROM ledger
WHERE user_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
"""
