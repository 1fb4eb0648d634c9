"""Redeeming promo codes (the bot) and managing them (the `orbit promo` CLI).

A redemption is one transaction: the activation row (primary key code + user:
once per user), one conditional `UPDATE ... WHERE uses < max_uses` (once per
use, so two users racing for the last use cannot both get it), and the effect
(a ledger credit, or days added to the subscription). Any refusal rolls all of
it back, so a bad code changes nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import asyncpg
import msgspec

from orbit import audit, ledger
from orbit.marzban.provisioning import PanelDeps
from orbit.promos import queries
from orbit.promos.queries import PromoRow
from orbit.subscriptions import extend_subscription, sync_config_expiry

log = logging.getLogger(__name__)

KINDS = ("balance", "days")
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,31}$")
MAX_DAYS = 3650
MAX_BALANCE_KOP = 100_000_000  # 1,000,000 RUB: anything above is a typo
MAX_USES = 2**31 - 1  # promocodes.max_uses is an integer column
MAX_USER_ID = 2**63 - 1  # created_by is a bigint, like every Telegram id
_PK = "pk_promocodes"
_FK_USER = "fk_promocode_activations_user_id_users"


class PromoError(Exception):
    """A code the user cannot use; `message_key` is what they are told."""

    message_key = "promo-error"


class PromoNotFound(PromoError):
    message_key = "promo-not-found"


class PromoInactive(PromoError):
    message_key = "promo-inactive"


class PromoExpired(PromoError):
    message_key = "promo-expired"


class PromoExhausted(PromoError):
    message_key = "promo-exhausted"


class PromoAlreadyUsed(PromoError):
    message_key = "promo-already-used"


class PromoInputError(Exception):
    """Bad input when creating or changing a code (the CLI prints it as one line)."""


class Redemption(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    kind: str
    value: int  # kopecks or days
    balance_kop: int | None = None  # the balance after a `balance` code
    until: datetime | None = None  # the subscription end after a `days` code


def normalize_code(raw: str) -> str | None:
    """Codes are case-insensitive and stored upper-case; None when it cannot be a code."""
    code = raw.strip().upper()
    return code if CODE_RE.match(code) else None


def _refusal(promo: PromoRow, now: datetime) -> PromoError | None:
    if not promo.is_active:
        return PromoInactive(promo.code)
    if promo.expires_at is not None and promo.expires_at <= now:
        return PromoExpired(promo.code)
    if promo.max_uses is not None and promo.uses >= promo.max_uses:
        return PromoExhausted(promo.code)
    return None


async def redeem(deps: PanelDeps, user_id: int, raw_code: str) -> Redemption:
    """Apply a promo code for the user once, or raise a `PromoError` having changed nothing.

    Days are added inside the transaction; the panels learn the new end after
    the commit (`sync_config_expiry`; the janitor repairs a panel that was down).
    """
    code = normalize_code(raw_code)
    if code is None:
        raise PromoNotFound(raw_code[:40])
    async with deps.pool.acquire() as conn, conn.transaction():
        found = await queries.for_user(conn, code, user_id)
        if found is None:
            raise PromoNotFound(code)
        promo, now, used = found
        if used:
            raise PromoAlreadyUsed(code)
        refusal = _refusal(promo, now)
        if refusal is not None:
            raise refusal
        try:
            first = await queries.insert_activation(conn, code, user_id)
        except asyncpg.ForeignKeyViolationError as exc:
            if exc.constraint_name == _FK_USER:
                raise ledger.UnknownUser(user_id) from None
            raise
        if not first:  # the same user redeemed it concurrently
            raise PromoAlreadyUsed(code)
        if await queries.claim_use(conn, code) is None:
            # Lost a race since the check above: say what the code is now.
            found = await queries.for_user(conn, code, user_id)
            refusal = None if found is None else _refusal(found[0], found[1])
            raise refusal or PromoExhausted(code)
        if promo.kind == "balance":
            entry = await ledger.credit(
                conn, user_id, promo.value, "promo", f"promo:{code}:{user_id}", note=f"promo {code}"
            )
            result = Redemption(
                code=code, kind=promo.kind, value=promo.value, balance_kop=entry.balance_after_kop
            )
        else:
            until = await extend_subscription(conn, user_id, promo.value)
            result = Redemption(code=code, kind=promo.kind, value=promo.value, until=until)
    log.info("user %d redeemed promo %s (%s %d)", user_id, code, promo.kind, promo.value)
    if result.kind == "days":  # never raises for a panel: a panel that fails stays flagged
        await sync_config_expiry(deps, user_id)
    return result


async def create_promo(
    pool: asyncpg.Pool,
    raw_code: str,
    kind: str,
    value: int,
    *,
    actor: str,
    max_uses: int | None = None,
    expires_at: datetime | None = None,
    created_by: int | None = None,
) -> PromoRow:
    """A new code: `value` is kopecks for `balance`, days for `days`. Bad input raises
    `PromoInputError` with a sentence saying what is wrong. `actor` (orbit.audit) is
    recorded with the code in one transaction."""
    code = normalize_code(raw_code)
    if code is None:
        raise PromoInputError(
            f"bad code {raw_code!r}: 3-32 characters of A-Z, 0-9, '_' and '-', not starting with '_' or '-'"
        )
    if kind not in KINDS:
        raise PromoInputError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    limit = MAX_DAYS if kind == "days" else MAX_BALANCE_KOP
    if not 0 < value <= limit:
        raise PromoInputError(f"the value must be positive and at most {limit} for a {kind} code")
    if max_uses is not None and not 0 < max_uses <= MAX_USES:
        raise PromoInputError(
            f"max uses must be positive and at most {MAX_USES} (leave it out for unlimited)"
        )
    if created_by is not None and not 0 < created_by <= MAX_USER_ID:
        raise PromoInputError(f"created_by {created_by} is not a Telegram user id")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise PromoInputError("the expiry needs a timezone")
        if expires_at <= datetime.now(UTC):
            raise PromoInputError("the expiry is in the past")
    try:
        async with pool.acquire() as conn, conn.transaction():
            promo = await queries.insert(conn, code, kind, value, max_uses, expires_at, created_by)
            await audit.record(conn, actor, "promo.create", target=f"promo:{code}", after=promo)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == _PK:
            raise PromoInputError(f"promo code {code} already exists") from None
        raise
    log.info("promo %s created: %s %d, max uses %s, expires %s", code, kind, value, max_uses, expires_at)
    return promo


async def list_promos(
    pool: asyncpg.Pool | asyncpg.Connection, *, include_unusable: bool = False
) -> list[PromoRow]:
    return await queries.list_codes(pool, include_unusable)


async def disable_promo(pool: asyncpg.Pool, raw_code: str, *, actor: str) -> PromoRow:
    """Stop a code from being redeemed (activations so far stay); audited when it was on."""
    code = normalize_code(raw_code)
    if code is None:
        raise PromoInputError(f"no promo code {raw_code!r}")
    async with pool.acquire() as conn, conn.transaction():
        before = await queries.get_for_update(conn, code)
        if before is None:
            raise PromoInputError(f"no promo code {raw_code!r}")
        promo = await queries.disable(conn, code)
        assert promo is not None
        if before.is_active:
            await audit.record(
                conn,
                actor,
                "promo.disable",
                target=f"promo:{code}",
                before={"is_active": True},
                after={"is_active": False},
            )
    log.info("promo %s disabled by %s", promo.code, actor)
    return promo
