"""A shop's worth of rows, written by Postgres itself (generate_series), for the
scaling benchmark and the query-plan test.

The shape follows a shop some months old: every user has a ledger entry and a
payment, one in four bought a plan, one in ten holds two live configs, one in
twenty has a TON payment pending, expiry dates spread over three months around
now, a third of the outbox is waiting. Ids of users start at `FIRST_USER`, so a
caller can pick existing ones (`FIRST_USER + k` for `k < users`).
"""

from __future__ import annotations

import asyncpg

FIRST_USER = 1_000_000
INSTANCES = ("bench-a", "bench-b", "bench-c")

# Each statement is one pass of generate_series; $1 is the number of users, $2 the instances.
_STATEMENTS = (
    """
    INSERT INTO marzban_instances (id, name, base_url, username, password)
    SELECT i, i, 'http://127.0.0.1:9/' || i, 'admin', 'x' FROM unnest($2::text[]) AS i
    WHERE $1::int > 0
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO users (id, username, first_name, language, balance_kop,
                       subscription_until, trial_used_at, blocked_at, created_at, last_seen_at)
    SELECT {first} + g, 'user' || g, 'User ' || g, CASE WHEN g % 3 = 0 THEN 'ru' ELSE 'en' END,
           (g % 50) * 1000,
           CASE WHEN g % 4 = 0 THEN now() + make_interval(hours => (g % 2160) - 720) END,
           CASE WHEN g % 2 = 0 THEN now() - make_interval(days => g % 300) END,
           CASE WHEN g % 50 = 7 THEN now() - make_interval(days => g % 30) END,
           now() - make_interval(mins => g % 500000), now() - make_interval(mins => g % 5000)
    FROM generate_series(0, $1 - 1) AS g
    """,
    """
    INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,
                          credited_kop, external_id, comment, created_at, expires_at, confirmed_at)
    SELECT {first} + g, m.method,
           CASE WHEN g % 20 = 0 THEN 'pending' WHEN g % 7 = 0 THEN 'expired' ELSE 'confirmed' END,
           30000, m.currency, 30000,
           CASE WHEN g % 20 <> 0 AND g % 7 <> 0 THEN 30000 END,
           CASE WHEN m.method <> 'ton' THEN m.method || ':' || g END,
           CASE WHEN m.method = 'ton' THEN 'ORB' || g END,
           now() - make_interval(mins => g % 100000),
           now() + make_interval(mins => 30 - (g % 60)),
           CASE WHEN g % 20 <> 0 AND g % 7 <> 0 THEN now() - make_interval(mins => g % 100000) END
    FROM generate_series(0, $1 - 1) AS g
    CROSS JOIN LATERAL (SELECT (ARRAY['ton', 'stars', 'cryptobot'])[1 + g % 3] AS method,
                               (ARRAY['TON', 'XTR', 'RUB'])[1 + g % 3] AS currency) m
    """,
    """
    INSERT INTO ledger (user_id, amount_kop, balance_after_kop, kind, idempotency_key, created_at)
    SELECT {first} + g, 30000, 30000, 'topup', 'bench:topup:' || g, now() - make_interval(mins => g % 100000)
    FROM generate_series(0, $1 - 1) AS g
    """,
    """
    INSERT INTO purchases (user_id, plan_id, days, price_kop, starts_at, ends_at, created_at)
    SELECT {first} + g, '1m', 30, 15000, now() - interval '30 days',
           now() + make_interval(hours => (g % 2160) - 720), now() - make_interval(mins => g % 100000)
    FROM generate_series(0, $1 - 1, 4) AS g
    """,
    """
    INSERT INTO configs (user_id, instance_id, panel_username, name, subscription_url,
                         status, needs_sync, created_at, updated_at)
    SELECT {first} + g, ($2::text[])[1 + (g / 10 + k) % 3], 'bench_' || g || '_' || k,
           'config ' || k, 'http://127.0.0.1:9/sub/' || g || '_' || k,
           CASE WHEN g % 1000 = 0 THEN 'pending' ELSE 'active' END, g % 500 = 0,
           now() - interval '30 days', now() - make_interval(mins => g % 50000)
    FROM generate_series(0, $1 - 1, 10) AS g CROSS JOIN generate_series(1, 2) AS k
    """,
    """
    INSERT INTO outbox (chat_id, kind, text, dedup_key, status, next_attempt_at, sent_at, created_at)
    SELECT {first} + g, 'notification', 'hello', 'bench:' || g,
           CASE WHEN g % 3 = 0 THEN 'pending' ELSE 'sent' END,
           now() + make_interval(secs => g % 600 - 300),
           CASE WHEN g % 3 <> 0 THEN now() - make_interval(mins => g % 50000) END,
           now() - make_interval(mins => g % 50000)
    FROM generate_series(0, $1 - 1, 2) AS g
    """,
    """
    INSERT INTO referrals (referee_id, referrer_id)
    SELECT {first} + g, {first} + g - 1 FROM generate_series(1, $1 - 1, 10) AS g
    """,
    """
    INSERT INTO promocodes (code, kind, value)
    SELECT 'BENCH' || k, 'days', 7 FROM generate_series(1, 20) AS k WHERE $1::int > 0
    """,
    """
    INSERT INTO promocode_activations (code, user_id)
    SELECT 'BENCH' || (1 + g % 20), {first} + g FROM generate_series(0, $1 - 1, 5) AS g
    """,
    """
    INSERT INTO ton_transactions (hash, lt, amount_nanoton, comment, status, utime)
    SELECT 'benchhash' || g, 1000 + g, 1500000000, 'ORB' || g,
           CASE WHEN g % 50 = 0 THEN 'unmatched' ELSE 'matched' END,
           now() - make_interval(mins => g % 100000)
    FROM generate_series(0, $1 - 1, 10) AS g
    """,
)


async def fill(conn: asyncpg.Connection, users: int) -> None:
    """Write the rows for `users` users into an empty schema, then ANALYZE."""
    for statement in _STATEMENTS:
        sql = statement.replace("{first}", str(FIRST_USER))
        args: list[object] = [users]
        if "$2" in sql:
            args.append(list(INSTANCES))
        await conn.execute(sql, *args)
    await conn.execute("ANALYZE")
