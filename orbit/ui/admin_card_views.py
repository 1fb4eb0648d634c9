"""Screens of the admin's user card beyond the profile (referrals, days granted or
removed, Stars refunds, configs with their panel and last use) and of the audit
trail. Facts in, (text, keyboard) out; the admin_card router fetches and shows."""

from __future__ import annotations

import msgspec
from aiogram.types import InlineKeyboardButton
from aiogram_i18n import I18nContext

from orbit.admin.card_queries import ReferralLink, Referrals
from orbit.admin.days import DaysGrant
from orbit.admin.users import UserCard
from orbit.audit import Entry
from orbit.configs.queries import ConfigRecord
from orbit.marzban.provisioning import Usage
from orbit.money import format_rub
from orbit.payments.queries import PaymentRow
from orbit.ui import admin_views
from orbit.ui.admin_views import AdminCb, AdminUserCb, _button, _keyboard, _panel, back_button
from orbit.ui.callbacks import ButtonData
from orbit.ui.views import Screen, format_date

AUDIT_VALUE_SHOWN = 80  # characters of an audit entry's before/after on a screen
AUDIT_LOG_SHOWN = 15


class AdminCardCb(ButtonData, prefix="admc"):
    """An action on the user card: days (asks), configs, audit, refund (asks), refund_yes."""

    action: str
    user_id: int
    payment_id: int = 0


class AdminDaysCb(ButtonData, prefix="admd"):
    """Confirm the days grant the FSM holds; the token names that one grant."""

    token: str


def refundable(payment: PaymentRow) -> bool:
    return payment.method == "stars" and payment.status == "confirmed"


def _link(i18n: I18nContext, link: ReferralLink) -> str:
    return i18n.get(
        "admin-card-referral",
        id=str(link.id),
        username=f"@{link.username}" if link.username else "",
        joined=format_date(link.created_at),
        bonus=i18n.get("admin-card-bonus-paid" if link.bonus_paid_at else "admin-card-bonus-not-yet"),
    ).rstrip()


def referral_lines(i18n: I18nContext, referrals: Referrals) -> list[str]:
    lines = [
        i18n.get(
            "admin-card-invited-by",
            who=_link(i18n, referrals.invited_by) if referrals.invited_by else i18n.get("admin-none"),
        ),
        i18n.get("admin-card-invited", count=referrals.invited_total, bonus=format_rub(referrals.bonus_kop)),
    ]
    return lines + ["• " + _link(i18n, link) for link in referrals.invited]


def _short(value: object) -> str:
    text = "—" if value is None else msgspec.json.encode(value).decode()
    return text if len(text) <= AUDIT_VALUE_SHOWN else text[: AUDIT_VALUE_SHOWN - 1] + "…"


def audit_line(i18n: I18nContext, entry: Entry) -> str:
    return i18n.get(
        "admin-audit-line",
        at=format_date(entry.at),
        actor=entry.actor,
        action=entry.action,
        target=" ".join(
            part
            for part in (
                f"user {entry.target_user_id}" if entry.target_user_id is not None else "",
                entry.target or "",
            )
            if part
        ),
        before=_short(entry.before),
        after=_short(entry.after),
    )


def card_lines(i18n: I18nContext, card: UserCard) -> list[str]:
    """What the user card adds below the ledger: referrals and the latest admin actions."""
    lines = ["", *referral_lines(i18n, card.referrals)]
    if card.audit:
        lines += ["", i18n.get("admin-card-audit")]
        lines += [audit_line(i18n, e) for e in card.audit]
    return lines


def card_rows(i18n: I18nContext, card: UserCard) -> list[list[InlineKeyboardButton]]:
    """The card's own buttons: days, configs, audit, and a refund per refundable payment."""
    user_id = card.profile.id
    refunds = [
        _button(
            i18n.get("btn-admin-refund", id=str(p.id)),
            AdminCardCb(action="refund", user_id=user_id, payment_id=p.id),
        )
        for p in card.payments
        if refundable(p)
    ]
    return [
        [
            _button(i18n.get("btn-admin-days"), AdminCardCb(action="days", user_id=user_id)),
            _button(i18n.get("btn-admin-configs"), AdminCardCb(action="configs", user_id=user_id)),
        ],
        [_button(i18n.get("btn-admin-user-audit"), AdminCardCb(action="audit", user_id=user_id))],
        *(refunds[i : i + 3] for i in range(0, len(refunds), 3)),
    ]


def _back_to_user(i18n: I18nContext, user_id: int) -> list[InlineKeyboardButton]:
    label = i18n.get("btn-admin-open-user", id=str(user_id))
    return [_button(label, AdminUserCb(action="show", user_id=user_id))]


def configs_screen(
    i18n: I18nContext, user_id: int, configs: list[ConfigRecord], usage: dict[int, Usage | None]
) -> Screen:
    lines = [i18n.get("admin-card-configs-title", id=str(user_id), count=len(configs))]
    for c in configs:
        found = usage.get(c.id)
        if found is None:
            use = i18n.get("admin-card-usage-unknown")
        else:
            use = i18n.get(
                "admin-card-usage",
                used=f"{found.used_traffic / 2**30:.2f}",
                online=format_date(found.online_at) if found.online_at else i18n.get("admin-card-never"),
            )
        lines.append(
            i18n.get("admin-card-config", name=c.name, instance=c.instance_id, status=c.status, usage=use)
        )
    return _panel(
        i18n,
        lines,
        [_button(i18n.get("btn-admin-refresh"), AdminCardCb(action="configs", user_id=user_id))],
        _back_to_user(i18n, user_id),
    )


def user_audit_screen(i18n: I18nContext, user_id: int, entries: list[Entry]) -> Screen:
    lines = [i18n.get("admin-card-audit-title", id=str(user_id))]
    lines += [audit_line(i18n, e) for e in entries] or [i18n.get("admin-audit-empty")]
    return _panel(i18n, lines, _back_to_user(i18n, user_id))


def audit_screen(i18n: I18nContext, entries: list[Entry]) -> Screen:
    lines = [i18n.get("admin-audit-title", count=len(entries))]
    lines += [audit_line(i18n, e) for e in entries] or [i18n.get("admin-audit-empty")]
    return _panel(i18n, lines, [_button(i18n.get("btn-admin-refresh"), AdminCb(screen="audit"))])


def days_confirm_screen(i18n: I18nContext, user_id: int, days: int, reason: str, token: str) -> Screen:
    key = "admin-days-confirm-add" if days > 0 else "admin-days-confirm-remove"
    return Screen(
        i18n.get(key, id=str(user_id), days=abs(days), reason=reason),
        _keyboard(
            [_button(i18n.get("btn-admin-confirm"), AdminDaysCb(token=token))],
            [_button(i18n.get("btn-admin-cancel"), AdminCb(screen="home"))],
        ),
    )


def days_done_text(i18n: I18nContext, grant: DaysGrant) -> str:
    if grant.replayed:
        return i18n.get("admin-days-replayed", id=str(grant.user_id), until=format_date(grant.after))
    key = "admin-days-added" if grant.days > 0 else "admin-days-removed"
    return i18n.get(key, id=str(grant.user_id), days=abs(grant.days), until=format_date(grant.after))


def refund_confirm_screen(i18n: I18nContext, payment: PaymentRow) -> Screen:
    return Screen(
        i18n.get(
            "admin-refund-confirm",
            id=str(payment.id),
            user=str(payment.user_id),
            amount=format_rub(payment.credited_kop or payment.amount_kop),
            stars=payment.currency_amount,
        ),
        _keyboard(
            [
                _button(
                    i18n.get("btn-admin-refund-yes"),
                    AdminCardCb(action="refund_yes", user_id=payment.user_id, payment_id=payment.id),
                )
            ],
            [_button(i18n.get("btn-admin-cancel"), AdminUserCb(action="show", user_id=payment.user_id))],
            [back_button(i18n)],
        ),
    )


def user_screen(i18n: I18nContext, card: UserCard) -> Screen:
    """The admin panel's user card with this module's lines and buttons added
    (above the row that leads back to the panel)."""
    base = admin_views.user_screen(i18n, card)
    assert base.markup is not None
    rows = base.markup.inline_keyboard
    text = "\n".join([base.text, *card_lines(i18n, card)])
    return Screen(text, _keyboard(*rows[:-1], *card_rows(i18n, card), rows[-1]))
