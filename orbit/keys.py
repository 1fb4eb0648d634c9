"""Every Redis key and channel Orbit uses, in one place (see DESIGN.md).

Keys one script, MULTI or multi-key command touches together share a hash tag
(`{...}`), so each such call names keys of one Redis Cluster slot: `{balancer}` (the
scores and every instance's health, replaced in one MULTI/EXEC), `{outbox}` (the send
budget's scripts), `{worker}` (the heartbeats `orbit status` reads with one MGET),
`{<user id>}` (a user's rate-limit buckets and FSM keys, read by one script). Orbit
runs on one Redis or a Sentinel-managed one; Cluster is not supported or tested
(README), the tags only keep that door open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Pub/sub wake-ups. Never the only carrier of a fact: the fact is a row. Published and
# subscribed under `channel()`'s name, never these bare ones.
OUTBOX_CHANNEL = "orbit:outbox"
TON_POKE_CHANNEL = "orbit:ton:poke"
BALANCER_POKE_CHANNEL = "orbit:balancer:poke"
# The janitor's chores now (the sandbox's clock moved: reminders and expiry are due).
JANITOR_POKE_CHANNEL = "orbit:janitor:poke"

BALANCER_SCORES = "{balancer}:scores"  # zset: "<instance>:<node>" -> load score, lowest wins
BALANCER_REFRESHED_AT = "{balancer}:refreshed_at"  # unix time of the last full refresh
TON_RATE = "rates:ton:rub"  # cached TON/RUB rate
# Taken (SET NX EX) by the janitor that runs reconciliation this interval; the others skip.
RECONCILE_CLAIM = "reconcile:claim"
# What the last setWebhook set (a hash, secret included), so N bot processes starting
# together or a rolling restart call it once (orbit/bot/webhook.py).
WEBHOOK_FINGERPRINT = "bot:webhook:fingerprint"

# The janitor's chores (orbit/janitor/schedule.py): hash name -> last run, duration, count.
JANITOR_CHORES = "janitor:chores"
# Taken (SET NX PX) for the night's backup by the janitor that makes it (orbit/backup.py).
BACKUP_CLAIM_PREFIX = "backup:night:"

# The bot's one send budget (orbit/outbox/limiter.py): replies and the outbox, every bot process.
OUTBOX_RATE = "{outbox}:rate"  # GCRA: when (µs, Redis clock) the next message may go out
OUTBOX_WINDOW = "{outbox}:window"  # zset: sends in flight or answered within the last second
OUTBOX_PAUSE = "{outbox}:pause"  # set for a 429's retry_after: no sender sends while it lives
# Lives between two notifications taken from the budget while replies queue (limiter.NOTIFY_SHARE).
SEND_NOTIFY_SHARE = "{outbox}:notify_share"
# Maintenance mode (orbit/maintenance.py): JSON while on, absent while off.
MAINTENANCE = "maintenance:state"


def channel(redis: Redis, name: str) -> str:
    """`name` for the client's db number: Redis delivers a message to every subscriber of the
    channel on the server, whatever db each selected, so two deployments (or test runs) on one
    server would otherwise wake each other."""
    return f"{name}:{redis.connection_pool.connection_kwargs.get('db', 0)}"


def maintenance_told(period: int, user_id: int) -> str:
    """Set (NX, with a TTL) when `user_id` got the maintenance message of `period`."""
    return f"maintenance:told:{period}:{user_id}"


def heartbeat(worker: str) -> str:
    # One tag for all: `orbit status` reads every worker's with one MGET.
    return f"{{worker}}:{worker}:heartbeat"


def lease(worker: str) -> str:
    return f"lease:{worker}"


def rate_limit(user_id: int, action: str) -> str:
    return f"rl:{{{user_id}}}:{action}"


def fsm_prefix(user_id: int) -> str:
    """aiogram's FSM keys of a user start with this (orbit/bot/fsm_keys.py): the user's tag."""
    return f"fsm:{{{user_id}}}"


def outbox_chat(chat_id: int) -> str:
    """Lives (PX) for the per-chat interval after a message to `chat_id` went out."""
    return f"{{outbox}}:chat:{chat_id}"


def balancer_instance(instance_id: str) -> str:
    return f"{{balancer}}:instance:{instance_id}"


def janitor_chore_claim(chore: str) -> str:
    """Held (PX its interval) by the janitor running `chore` this interval."""
    return f"janitor:chore:{chore}:claim"


def backup_claim(day: str) -> str:
    """Held by the janitor that makes the nightly backup of `day` (YYYY-MM-DD)."""
    return f"{BACKUP_CLAIM_PREFIX}{day}"


def webhook_update_done(update_id: int) -> str:
    """Set (with a TTL) once a webhook update was handled: a redelivery is answered at once."""
    return f"bot:update:{update_id}:done"


def marzban_token(instance_id: str) -> str:
    return f"marzban:{instance_id}:token"


def marzban_token_lock(instance_id: str) -> str:
    """Held by the one process logging in to a panel; the others wait for its token."""
    return f"marzban:{instance_id}:token:lock"


WORKERS = ("bot", "ton_watcher", "balancer", "janitor")
