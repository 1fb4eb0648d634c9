"""Screens of the user journey: each function turns facts into (text, keyboard).

Handlers fetch the facts (one business call) and show the screen; nothing here
touches the database or the Bot API.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram_i18n import I18nContext

from orbit.i18n import LOCALES
from orbit.money import format_rub
from orbit.plans import Plan, Plans
from orbit.subscriptions import Purchase, Subscription, on_trial, trial_offered
from orbit.ui.callbacks import AutoRenewCb, BuyCb, GateCb, LangCb, MenuCb, PlanCb, TrialCb
from orbit.users.queries import UserRow
from orbit.users.registration import ReferralStats

T = TypeVar("T")


class Screen(msgspec.Struct, frozen=True):
    text: str
    markup: InlineKeyboardMarkup | None = None


# Keyboards and constant screens depend only on the locale (and a flag), yet cost
# more CPU to build (pydantic buttons, callback data, Fluent) than the rest of a
# menu press: each is built once per process and shared (aiogram never mutates one).
_BUILT: dict[tuple[object, ...], object] = {}


def _once(key: tuple[object, ...], build: Callable[[], T]) -> T:
    value = _BUILT.get(key)
    if value is None:
        value = _BUILT[key] = build()
    return value  # type: ignore[return-value]


def format_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%d.%m.%Y %H:%M UTC")


def _button(text: str, callback: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=callback.pack())


def main_menu_button(i18n: I18nContext) -> InlineKeyboardButton:
    """« Menu: the way back to the main menu from any screen."""
    return _once(("menu-button", i18n.locale), lambda: _button(i18n.get("btn-menu"), MenuCb(screen="main")))


def _keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])


def plan_name(i18n: I18nContext, plan: Plan) -> str:
    return i18n.get("plan-name", months=plan.months)


def trial_available(user: UserRow, trial_days: int) -> bool:
    return trial_offered(user.subscription_until, user.trial_used_at, trial_days)


def main_menu(i18n: I18nContext, user: UserRow, trial_days: int, greeting: str | None = None) -> Screen:
    """Built from the user row alone, so a menu press needs no query beyond loading it."""
    lines = [greeting] if greeting else []
    lines.append(_once(("menu-title", i18n.locale), lambda: i18n.get("menu-title")))
    lines.append("")
    until = user.subscription_until
    if until is None:
        lines.append(_once(("menu-status-none", i18n.locale), lambda: i18n.get("menu-status-none")))
    elif until > datetime.now(UTC):
        key = "menu-status-trial" if on_trial(until, user.trial_used_at, trial_days) else "menu-status-active"
        lines.append(i18n.get(key, until=format_date(until)))
    else:
        lines.append(i18n.get("menu-status-expired", until=format_date(until)))
    lines.append(i18n.get("menu-balance", balance=format_rub(user.balance_kop)))
    offer = trial_available(user, trial_days)
    if offer:
        lines += ["", _once(("offer", i18n.locale, trial_days),
                            lambda: i18n.get("menu-trial-offer", days=trial_days))]
    markup = _once(("main", i18n.locale, offer), lambda: _main_menu_keyboard(i18n, offer))
    return Screen("\n".join(lines), markup)


def _main_menu_keyboard(i18n: I18nContext, offer: bool) -> InlineKeyboardMarkup:
    return _keyboard(
        [_button(i18n.get("btn-trial"), TrialCb())] if offer else [],
        [
            _button(i18n.get("btn-sub"), MenuCb(screen="sub")),
            _button(i18n.get("btn-buy"), MenuCb(screen="buy")),
        ],
        [
            _button(i18n.get("btn-configs"), MenuCb(screen="configs")),
            _button(i18n.get("btn-balance"), MenuCb(screen="balance")),
        ],
        [
            _button(i18n.get("btn-ref"), MenuCb(screen="ref")),
            _button(i18n.get("btn-promo"), MenuCb(screen="promo")),
        ],
        [
            _button(i18n.get("btn-settings"), MenuCb(screen="settings")),
            _button(i18n.get("btn-help"), MenuCb(screen="help")),
        ],
    )


def help_screen(i18n: I18nContext, support_contact: str) -> Screen:
    return _once(
        ("help", i18n.locale, support_contact),
        lambda: Screen(
            i18n.get("help-text", support=support_contact),
            _keyboard([main_menu_button(i18n)]),
        ),
    )


def settings_screen(i18n: I18nContext, language: str) -> Screen:
    def build() -> Screen:
        choices = [
            _button(("• " if code == language else "") + i18n.get(f"language-name-{code}"), LangCb(code=code))
            for code in LOCALES
        ]
        return Screen(
            i18n.get("settings-text", language=i18n.get(f"language-name-{language}")),
            _keyboard(choices, [main_menu_button(i18n)]),
        )

    return _once(("settings", i18n.locale, language), build)


def referral_screen(i18n: I18nContext, link: str, stats: ReferralStats, bonus_rub: int) -> Screen:
    return Screen(
        i18n.get(
            "ref-text",
            link=link,
            bonus=str(bonus_rub),
            invited=stats.invited,
            paid=stats.paid,
            earned=format_rub(stats.earned_kop),
        ),
        _keyboard([main_menu_button(i18n)]),
    )


def subscription_screen(i18n: I18nContext, sub: Subscription, plans: Plans) -> Screen:
    lines = [i18n.get("sub-title"), ""]
    if sub.until is None:
        lines.append(i18n.get("sub-none"))
    elif sub.is_trial:
        lines.append(i18n.get("sub-trial", until=format_date(sub.until)))
    elif sub.active:
        lines.append(i18n.get("sub-active", until=format_date(sub.until)))
    else:
        lines.append(i18n.get("sub-expired", until=format_date(sub.until)))
    plan = plans.get(sub.plan_id) if sub.plan_id else None
    if plan is not None:
        lines.append(i18n.get("sub-plan", name=plan_name(i18n, plan)))
    if not sub.auto_renew:
        renewal = "sub-auto-renew-off"
    elif plan is None:  # a trial or promo days: there is no plan to buy again
        renewal = "sub-auto-renew-on-no-plan"
    else:
        renewal = "sub-auto-renew-on"
    lines += ["", i18n.get(renewal)]
    toggle = (
        _button(i18n.get("btn-auto-renew-off"), AutoRenewCb(on=False))
        if sub.auto_renew
        else _button(i18n.get("btn-auto-renew-on"), AutoRenewCb(on=True))
    )
    return Screen(
        "\n".join(lines),
        _keyboard(
            [_button(i18n.get("btn-trial"), TrialCb())] if sub.trial_available else [],
            [_button(i18n.get("btn-extend"), MenuCb(screen="buy"))],
            [toggle],
            [main_menu_button(i18n)],
        ),
    )


def trial_started_screen(i18n: I18nContext, until: datetime) -> Screen:
    return Screen(
        i18n.get("trial-started", until=format_date(until)),
        _keyboard(
            [_button(i18n.get("btn-configs"), MenuCb(screen="configs"))],
            [main_menu_button(i18n)],
        ),
    )


def plans_screen(i18n: I18nContext, plans: Plans, balance_kop: int) -> Screen:
    rows = [
        [
            _button(
                i18n.get("plan-button", name=plan_name(i18n, plan), price=format_rub(plan.price)),
                PlanCb(plan_id=plan.id),
            )
        ]
        for plan in plans
    ]
    return Screen(
        i18n.get("plans-title", balance=format_rub(balance_kop)),
        _keyboard(*rows, [main_menu_button(i18n)]),
    )


def confirm_screen(
    i18n: I18nContext, plan: Plan, balance_kop: int, until: datetime, token: str, auto_renew: bool
) -> Screen:
    price = format_rub(plan.price)
    confirm = BuyCb(plan_id=plan.id, price=plan.price, token=token)
    text = i18n.get(
        "buy-confirm",
        name=plan_name(i18n, plan),
        days=plan.days,
        price=price,
        balance=format_rub(balance_kop),
        until=format_date(until),
    )
    if auto_renew:  # said before the press that buys: the plan will be bought again
        text += "\n\n" + i18n.get("buy-auto-renew-note")
    return Screen(
        text,
        _keyboard(
            [_button(i18n.get("btn-confirm", price=price), confirm)],
            [_button(i18n.get("btn-back"), MenuCb(screen="buy")), main_menu_button(i18n)],
        ),
    )


def purchase_done_screen(i18n: I18nContext, plan: Plan, purchase: Purchase) -> Screen:
    return Screen(
        i18n.get(
            "buy-done",
            price=format_rub(purchase.price_kop),
            name=plan_name(i18n, plan),
            until=format_date(purchase.ends_at),
            balance=format_rub(purchase.balance_after_kop),
        ),
        _keyboard(
            [_button(i18n.get("btn-configs"), MenuCb(screen="configs"))],
            [main_menu_button(i18n)],
        ),
    )


def insufficient_screen(i18n: I18nContext, price_kop: int, balance_kop: int) -> Screen:
    missing = format_rub(price_kop - balance_kop)
    return Screen(
        i18n.get(
            "buy-insufficient",
            price=format_rub(price_kop),
            balance=format_rub(balance_kop),
            missing=missing,
        ),
        _keyboard(
            [_button(i18n.get("btn-topup", missing=missing), MenuCb(screen="balance"))],
            [_button(i18n.get("btn-back"), MenuCb(screen="buy")), main_menu_button(i18n)],
        ),
    )


def gate_screen(i18n: I18nContext, channel: str, then: str) -> Screen:
    rows = []
    if channel.startswith("@"):
        rows.append([InlineKeyboardButton(text=i18n.get("gate-btn-join"), url=f"https://t.me/{channel[1:]}")])
    rows.append([_button(i18n.get("gate-btn-check"), GateCb(then=then))])
    rows.append([main_menu_button(i18n)])
    return Screen(i18n.get("gate-text", channel=channel), _keyboard(*rows))
