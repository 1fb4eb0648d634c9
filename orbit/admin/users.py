"""One user as an admin sees them, their balance corrected by hand, bans.

An adjustment is a ledger entry of kind `adjustment` whose idempotency key comes
from the admin action (the bot's confirmation token, the CLI's `--key`), so a
repeated press or a retried command changes the balance once. The ledger
refuses a debit below zero; the refusal says how much there is.
"""

from __future__ import annotations

import asyncio
import logging
import re
from decimal import Decimal, InvalidOperation

import asyncpg
import msgspec

from orbit import audit, ledger
from orbit.admin import card_queries, queries
from orbit.admin.card_queries import Referrals
from orbit.admin.errors import (
    AmountTooLarge,
    CannotBanAdmin,
    EmptyReason,
    InvalidAmount,
    InvalidUserRef,
    UserNotFound,
    WouldGoNegative,
    ZeroAmount,
)
from orbit.admin.queries import LedgerLine, Profile
from orbit.configs import queries as configs_q
from orbit.configs.queries import ConfigRecord
from orbit.marzban.errors import MarzbanError
from orbit.marzban.provisioning import PanelDeps, Usage, read_usage
from orbit.money import KOPECKS_PER_RUB, format_rub
from orbit.payments.queries import PaymentRow
from orbit.subscriptions import latest_plan_id, sync_config_expiry
from orbit.text import clean_text

log = logging.getLogger(__name__)

MAX_ADJUST_KOP = 100_000_000  # 1,000,000 RUB either way: anything larger is a typo
REASON_MAX_LENGTH = 200
PAYMENTS_SHOWN = 5
LEDGER_SHOWN = 10
USAGE_WAIT_SECONDS = 5.0  # a panel that is down must not hold the card longer
REFERRALS_SHOWN = 10
AUDIT_SHOWN = 5
MAX_USER_ID = 2**63 - 1

_AMOUNT_RE = re.compile(r"^[+-]?[0-9]{1,12}(?:[.,][0-9]{1,2})?$")
# Telegram usernames: 5-32 of a-z, 0-9, '_' (older ones may be shorter; 3 is safe).
_USERNAME_RE = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{2,31})$")


class UserCard(msgspec.Struct, frozen=True, kw_only=True):
    profile: Profile
    plan_id: str | None  # the plan bought last
    configs: list[ConfigRecord]  # live ones
    payments: list[PaymentRow]  # newest first
    ledger: list[LedgerLine]  # newest first
    referrals: Referrals
    audit: list[audit.Entry]  # admin actions on this user, newest first


class Adjustment(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    user_id: int
    amount_kop: int  # signed
    balance_after_kop: int
    replayed: bool  # this action was applied before: nothing changed now


def parse_amount(raw: str) -> int:
    """`+100`, `-50`, `99.50`, `99,5` → signed kopecks; refuses zero and absurd amounts."""
    text = raw.strip().replace(" ", "").replace("\u00a0", "")
    if not _AMOUNT_RE.match(text):
        raise InvalidAmount(raw[:40])
    try:
        kopecks = Decimal(text.replace(",", ".")) * KOPECKS_PER_RUB
    except InvalidOperation:
        raise InvalidAmount(raw[:40]) from None
    if kopecks == 0:
        raise ZeroAmount()
    if abs(kopecks) > MAX_ADJUST_KOP:
        raise AmountTooLarge(format_rub(MAX_ADJUST_KOP))
    return int(kopecks)


def parse_user_ref(raw: str) -> int | str:
    """A Telegram id (digits) or a username (with or without '@')."""
    text = raw.strip()
    if text.isascii() and text.isdigit():
        user_id = int(text)
        if 0 < user_id <= MAX_USER_ID:
            return user_id
        raise InvalidUserRef(raw[:40])
    match = _USERNAME_RE.match(text)
    if match is None:
        raise InvalidUserRef(raw[:40])
    return match.group(1)


def check_reason(raw: str) -> str:
    # Outside text (a ledger note): cleaned, then one character over the limit kept so
    # that a too long reason is refused rather than cut.
    reason = " ".join(clean_text(raw, REASON_MAX_LENGTH * 4).split())[: REASON_MAX_LENGTH + 1]
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise EmptyReason(REASON_MAX_LENGTH)
    return reason


async def resolve_user(pool: asyncpg.Pool | asyncpg.Connection, ref: int | str) -> int:
    """The id of an existing user named by id or username; `UserNotFound` otherwise."""
    if isinstance(ref, int):
        if await queries.user_exists(pool, ref):
            return ref
        raise UserNotFound(ref)
    user_id = await queries.find_by_username(pool, ref)
    if user_id is None:
        raise UserNotFound(ref)
    return user_id


async def user_card(pool: asyncpg.Pool, ref: int | str) -> UserCard:
    """Balance, subscription, configs, last payments and the ledger's tail, in one snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        user_id = await resolve_user(conn, ref)
        profile = await queries.profile(conn, user_id)
        assert profile is not None
        return UserCard(
            profile=profile,
            plan_id=await latest_plan_id(conn, user_id),
            configs=await configs_q.list_of_user(conn, user_id),
            payments=await queries.recent_payments(conn, user_id, PAYMENTS_SHOWN),
            ledger=await queries.ledger_tail(conn, user_id, LEDGER_SHOWN),
            referrals=await card_queries.referrals(conn, user_id, REFERRALS_SHOWN),
            audit=await audit.latest(conn, user_id=user_id, limit=AUDIT_SHOWN),
        )


async def config_usage(deps: PanelDeps, configs: list[ConfigRecord]) -> dict[int, Usage | None]:
    """Each config's traffic and last use as its panel says, asked concurrently; None
    for a config whose panel did not answer within USAGE_WAIT_SECONDS (the card is
    still worth showing without it)."""

    async def one(config: ConfigRecord) -> Usage | None:
        try:
            async with asyncio.timeout(USAGE_WAIT_SECONDS):
                return await read_usage(deps, config.id)
        except (MarzbanError, TimeoutError) as exc:
            log.info("config %d: usage unreadable for the card: %s", config.id, exc)
            return None

    results = await asyncio.gather(*(one(c) for c in configs))
    return {c.id: usage for c, usage in zip(configs, results, strict=True)}


async def adjust_balance(
    pool: asyncpg.Pool,
    user_id: int,
    amount_kop: int,
    *,
    reason: str,
    actor: str,
    action_key: str,
) -> Adjustment:
    """Credit (> 0) or debit (< 0) a balance by hand, once per `action_key`.

    `actor` names who did it (orbit.audit: a Telegram id, `cli:<os user>`); it goes
    into the ledger note with the reason, and the audit row is written with the
    entry. Refuses a zero or absurd amount, a missing reason, an unknown user and
    a debit larger than the balance; nothing changes then.
    """
    if amount_kop == 0:
        raise ZeroAmount()
    if abs(amount_kop) > MAX_ADJUST_KOP:
        raise AmountTooLarge(format_rub(MAX_ADJUST_KOP))
    reason = check_reason(reason)
    note = f"{'admin ' + actor if actor.isdigit() else actor}: {reason}"  # "admin 42: ...", "cli:ann: ..."
    async with pool.acquire() as conn, conn.transaction():
        try:
            entry = await ledger.apply(
                conn, user_id, amount_kop, "adjustment", f"adjustment:{action_key}", note=note
            )
        except ledger.UnknownUser:
            raise UserNotFound(user_id) from None
        except ledger.InsufficientFunds as exc:
            raise WouldGoNegative(user_id, format_rub(exc.balance_kop), format_rub(exc.needed_kop)) from None
        if not entry.replayed:  # a replay changed nothing: no second row
            await audit.record(
                conn,
                actor,
                "balance.adjust",
                target_user_id=user_id,
                target=f"ledger:{entry.id}",
                before={"balance_kop": entry.balance_after_kop - entry.amount_kop},
                after={
                    "balance_kop": entry.balance_after_kop,
                    "amount_kop": entry.amount_kop,
                    "reason": reason,
                },
            )
    if not entry.replayed:
        log.info(
            "balance of user %d adjusted by %d kop by %s (entry %d): %s",
            user_id, amount_kop, actor, entry.id, reason,
        )  # fmt: skip
    return Adjustment(
        entry_id=entry.id,
        user_id=user_id,
        amount_kop=entry.amount_kop,
        balance_after_kop=entry.balance_after_kop,
        replayed=entry.replayed,
    )


async def set_banned(
    deps: PanelDeps, user_id: int, banned: bool, *, actor: str, admin_ids: tuple[int, ...] = ()
) -> bool:
    """Ban or unban a user; returns whether anything changed. Admins cannot be banned.

    A banned user's configs are disabled on their panels (the rows keep the user's
    own on/off choice, which an unban restores): flagged `needs_sync` in the ban's
    transaction, then reconciled at once; a panel that is down leaves the flag for
    the janitor's repair, and the ban stands either way.
    """
    if banned and user_id in admin_ids:
        raise CannotBanAdmin(user_id)
    async with deps.pool.acquire() as conn, conn.transaction():
        was = await queries.set_banned(conn, user_id, banned)
        if was is not None and was != banned:
            await queries.flag_user_configs(conn, user_id)
            await audit.record(
                conn,
                actor,
                "user.ban" if banned else "user.unban",
                target_user_id=user_id,
                before={"banned": was},
                after={"banned": banned},
            )
    if was is None:
        raise UserNotFound(user_id)
    if was == banned:
        return False
    log.info("user %d %s by %s", user_id, "banned" if banned else "unbanned", actor)
    await sync_config_expiry(deps, user_id)  # each config's full reconcile, enabled state included
    return True
