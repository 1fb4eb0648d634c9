"""Rate limits per user and action, read in the same Redis round trip as the FSM state.

Handlers declare their action with a flag: `@router.callback_query(BuyCb.filter(),
flags={"rate": "purchase"})`; actions and their limits are `orbit.ratelimit.LIMITS`
(`start`, `payment`, `purchase`, anything else `default`).

Why this middleware takes the place of aiogram's FSM middleware: that one reads
the state key from Redis on every update, before routing, and a rate limit must
run before routing too (a refused update must not cost a Postgres query). Both
are done by one Lua script, so a menu press costs one Redis round trip. Because
routing has not happened yet, the flags are read once at start-up from the
routers: a `rate` flag is honoured on handlers filtered by a `CallbackData`
(its prefix names the action for every button of that class, or, when the filter
is `SomeCb.filter(F.<first field> == "value")`, for the buttons whose first field
is that value: `cfg:new` is config creation, `cfg:show` a panel read) or by
`Command`; anywhere else it fails the start-up rather than being ignored.

A refused button gets a localized alert; a refused message gets one warning and
later ones are dropped silently until the bucket refills. Updates Telegram sends
about payments (pre-checkout queries, `successful_payment`) are never limited.
When Redis is unreachable the bot keeps serving without limits (logged, counted
as `ratelimit_redis_errors_total`); the FSM state then reads as empty.
"""

from __future__ import annotations

import logging
import math
import operator
from typing import Any

import asyncpg
from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import BotCommand, TelegramObject, Update
from magic_filter.operations import ComparatorOperation, GetAttributeOperation
from redis.exceptions import RedisError

from orbit.bot.api_failures import BOT_API_FAILURES, describe
from orbit.bot.middlewares import Handler
from orbit.i18n import Translator, language_for, plain_text
from orbit.metrics import Metrics
from orbit.ratelimit import DEFAULT_ACTION, Decision, RateLimiter
from orbit.users import queries as user_queries

log = logging.getLogger(__name__)

RATE_FLAG = "rate"
# Actions whose refusal has its own message (`rate-limited-<action>` in access.ftl).
BUDGET_ACTIONS = frozenset({"config_create", "config_delete", "panel_read", "qr"})


def _first_field_value(f: CallbackQueryFilter) -> str | None:
    """`"new"` for `ConfigCb.filter(F.action == "new")` when `action` is ConfigCb's first
    field (packed right after the prefix); None for any other rule."""
    rule = f.rule
    operations = getattr(rule, "_operations", ())  # magic-filter's chain, read once at start-up
    if len(operations) != 2:
        return None
    attribute, comparison = operations
    if not isinstance(attribute, GetAttributeOperation) or not isinstance(comparison, ComparatorOperation):
        return None
    fields = list(f.callback_data.model_fields)
    value = comparison.right
    if comparison.comparator is not operator.eq or not fields or attribute.name != fields[0]:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


class RateActions:
    """Which action an update is, decided before routing from the handlers' flags."""

    def __init__(
        self,
        commands: dict[str, str],
        callbacks: dict[str, str],
        buttons: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.commands = commands
        self.callbacks = callbacks  # prefix -> action
        self.buttons = buttons or {}  # prefix -> first field's value -> action

    @classmethod
    def scan(cls, router: Router, known: set[str]) -> RateActions:
        commands: dict[str, str] = {}
        callbacks: dict[str, str] = {}
        buttons: dict[str, dict[str, str]] = {}

        def put(table: dict[str, str], name: str, action: str, where: str) -> None:
            if action not in known:
                raise ValueError(f"{where}: unknown rate action {action!r}, expected one of {sorted(known)}")
            if table.get(name, action) != action:
                raise ValueError(f"{where}: {name!r} has two rate actions, {table[name]!r} and {action!r}")
            table[name] = action

        for r in router.chain_tail:
            for observer in r.observers.values():
                for handler in observer.handlers:
                    action = handler.flags.get(RATE_FLAG)
                    if not action:
                        continue
                    where = f"router {r.name}, handler {handler.callback.__name__}"
                    attributed = False
                    for f in handler.filters or ():
                        if isinstance(f.callback, Command) and observer is r.message:
                            for command in f.callback.commands:
                                name = command.command if isinstance(command, BotCommand) else command
                                if isinstance(name, str):
                                    put(commands, name.lower(), action, where)
                                    attributed = True
                        elif isinstance(f.callback, CallbackQueryFilter) and observer is r.callback_query:
                            prefix = f.callback.callback_data.__prefix__
                            value = _first_field_value(f.callback)
                            if value is None:
                                put(callbacks, prefix, action, where)
                            else:
                                put(buttons.setdefault(prefix, {}), value, action, where)
                            attributed = True
                    if not attributed:
                        # Decided before routing, the action must be read off the update
                        # alone: a flag the scan cannot attribute would be silently ignored.
                        raise ValueError(
                            f"{where}: a {RATE_FLAG!r} flag needs a Command filter (messages)"
                            " or a CallbackData filter (buttons)"
                        )
        return cls(commands, callbacks, buttons)

    def classify(self, update: Update) -> str | None:
        """The update's action, or None for updates that are never limited."""
        if update.callback_query is not None:
            prefix, _, rest = (update.callback_query.data or "").partition(":")
            by_value = self.buttons.get(prefix)
            if by_value is not None:
                action = by_value.get(rest.partition(":")[0])
                if action is not None:
                    return action
            return self.callbacks.get(prefix, DEFAULT_ACTION)
        message = update.message
        if message is None or message.from_user is None:
            return None
        if message.successful_payment is not None or message.refunded_payment is not None:
            return None
        text = message.text or ""
        if text.startswith("/"):
            command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""
            return self.commands.get(command, DEFAULT_ACTION)
        return DEFAULT_ACTION


class ThrottlingMiddleware(FSMContextMiddleware):
    """aiogram's FSM middleware plus a rate limit, in one Redis round trip."""

    def __init__(
        self,
        fsm: FSMContextMiddleware,
        limiter: RateLimiter,
        actions: RateActions,
        metrics: Metrics,
    ) -> None:
        if not isinstance(fsm.storage, RedisStorage):
            raise TypeError("throttling reads the FSM state with its script: it needs RedisStorage")
        super().__init__(fsm.storage, fsm.events_isolation, fsm.strategy)
        self.redis_storage: RedisStorage = fsm.storage
        self.limiter = limiter
        self.actions = actions
        self.metrics = metrics
        self.isolated = not isinstance(self.events_isolation, DisabledEventIsolation)

    async def __call__(
        self,
        handler: Handler,
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        bot: Bot = data["bot"]
        context = self.resolve_event_context(bot, data)
        data["fsm_storage"] = self.storage
        if context is None:
            return await handler(event, data)
        if self.isolated:
            async with self.events_isolation.lock(key=context.key):
                return await self._limited(handler, event, data, context)
        # aiogram's default: no isolation, whose lock is a no-op async context manager
        # (skipped: it is a measurable part of a menu press).
        return await self._limited(handler, event, data, context)

    async def _limited(
        self,
        handler: Handler,
        event: TelegramObject,
        data: dict[str, Any],
        context: FSMContext,
    ) -> Any:
        action = self.actions.classify(event) if isinstance(event, Update) else None
        user = data.get("event_from_user")
        if action is None or user is None:
            raw_state = await self._state(context)
            data.update({"state": context, "raw_state": raw_state})
            return await handler(event, data)
        decision = await self._hit(user.id, action, context)
        if decision is None:  # Redis is down: serve without a limit or a state
            data.update({"state": context, "raw_state": None})
            return await handler(event, data)
        data.update({"state": context, "raw_state": decision.extra})
        if decision.allowed:
            return await handler(event, data)
        self.metrics.inc("ratelimit_refused_total", action=action)
        await self._refuse(event, data, decision, action)
        return None

    async def _hit(self, user_id: int, action: str, context: FSMContext) -> Decision | None:
        state_key = self.redis_storage.key_builder.build(context.key, "state")
        try:
            return await self.limiter.hit(user_id, action, also_get=state_key)
        except (RedisError, OSError) as exc:
            self.metrics.inc("ratelimit_redis_errors_total")
            log.warning("rate limit skipped for user %d (%s): redis error %s", user_id, action, exc)
            return None

    async def _state(self, context: FSMContext) -> str | None:
        try:
            return await context.get_state()
        except (RedisError, OSError) as exc:
            self.metrics.inc("fsm_redis_errors_total")
            log.warning("FSM state unreadable for %s: %s", context.key.user_id, exc)
            return None

    async def _refuse(self, update: Update, data: dict[str, Any], decision: Decision, action: str) -> None:
        bot: Bot = data["bot"]
        from_user = data["event_from_user"]
        if update.callback_query is None and not decision.first_refusal:
            return  # a message flood: warned once already, stay quiet
        text = await self._text(data, from_user.id, from_user.language_code, decision.retry_after, action)
        try:
            if update.callback_query is not None:
                await bot.answer_callback_query(update.callback_query.id, plain_text(text), show_alert=True)
            elif update.message is not None:
                await bot.send_message(update.message.chat.id, text)
        except BOT_API_FAILURES as exc:
            log.info("rate-limit notice to user %d not delivered: %s", from_user.id, describe(exc))

    async def _text(
        self, data: dict[str, Any], user_id: int, language_code: str | None, retry_after: float, action: str
    ) -> str:
        translator: Translator = data["translator"]
        pool: asyncpg.Pool = data["pool"]
        # Refusals are rare; only they pay for the stored language choice.
        row = await user_queries.get_user(pool, user_id)
        locale = row.language if row is not None else language_for(language_code)
        seconds = max(1, math.ceil(retry_after))
        # A budget of an outside service says what it allows; navigation and the rest say "too fast".
        key = f"rate-limited-{action}" if action in BUDGET_ACTIONS else "rate-limited"
        return translator(locale, key, seconds=seconds)


def install_throttling(dp: Dispatcher, limiter: RateLimiter, metrics: Metrics) -> ThrottlingMiddleware:
    """Put throttling in place of the dispatcher's FSM middleware, at the same position.

    Call after every router is included (the flags are read now).
    """
    actions = RateActions.scan(dp, set(limiter.limits))
    throttling = ThrottlingMiddleware(dp.fsm, limiter, actions, metrics)
    manager = dp.update.outer_middleware
    position = list(manager).index(dp.fsm)
    after = list(manager)[position + 1 :]
    for middleware in [dp.fsm, *after]:
        manager.unregister(middleware)
    manager.register(throttling)
    for middleware in after:
        manager.register(middleware)
    log.info(
        "rate limits: %s; commands %s; buttons %s",
        ", ".join(f"{a}=1/{lim.interval:g}s" for a, lim in limiter.limits.items()),
        actions.commands or "-",
        {**actions.callbacks, **{f"{p}:{v}": a for p, by in actions.buttons.items() for v, a in by.items()}}
        or "-",
    )
    return throttling
