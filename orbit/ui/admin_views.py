"""Screens of the admin panel: facts in, (text, keyboard) out. Nothing here touches
the database or the Bot API; the admin router fetches and shows."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram_i18n import I18nContext
from markupsafe import Markup, escape

from orbit.admin.panels import InstanceLine
from orbit.admin.queries import Progress, Revenue
from orbit.admin.stats import InstanceLoad, Stats
from orbit.admin.users import UserCard
from orbit.health import Status, WorkerStatus
from orbit.health import verdict as status_verdict
from orbit.maintenance import Maintenance
from orbit.marzban.drain import DrainReport
from orbit.money import format_rub
from orbit.promos.queries import PromoRow
from orbit.ui.callbacks import ButtonData
from orbit.ui.views import Screen, format_date

NOTE_SHOWN = 60  # characters of a ledger note on the user card
ERROR_SHOWN = 60  # characters of an instance's last error
NODES_SHOWN = 6  # node scores and excluded nodes shown per instance
NODE_LABEL = 24  # characters of a node's name on a button


class AdminCb(ButtonData, prefix="adm"):
    """A screen of the panel: home, stats, health, user, promos, promo_new, inst, bc, audit."""

    screen: str


class AdminUserCb(ButtonData, prefix="admu"):
    action: str  # show, adjust, ban, unban
    user_id: int


class AdminAdjustCb(ButtonData, prefix="admadj"):
    """Confirm the adjustment the FSM holds; the token names that one adjustment."""

    token: str


class AdminPromoCb(ButtonData, prefix="admp"):
    """Disable a promo code."""

    code: str


class AdminInstCb(ButtonData, prefix="admi"):
    action: str  # on, off, drain (asks), drain_yes
    instance_id: str


class AdminBcCb(ButtonData, prefix="admbc"):
    """aud (token: the audience), lang (token: any, en, ru), nobutton, send (token: the
    FSM's), progress and cancel (of broadcast_id)."""

    action: str
    token: str = ""
    broadcast_id: int = 0


class AdminMaintCb(ButtonData, prefix="admmt"):
    action: str  # on (asks for the message), default (on, the catalog's message), off


class AdminNodeCb(ButtonData, prefix="admn"):
    """On an instance: exclude (asks for the node's name), include (one excluded node,
    by its position in the excluded list), poke (ask the balancer for a refresh)."""

    action: str
    instance_id: str = ""
    index: int = 0


def _button(text: str, callback: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=callback.pack())


def _keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])


def back_button(i18n: I18nContext) -> InlineKeyboardButton:
    return _button(i18n.get("btn-admin-back"), AdminCb(screen="home"))


def cancel_markup(i18n: I18nContext) -> InlineKeyboardMarkup:
    return _keyboard([_button(i18n.get("btn-admin-cancel"), AdminCb(screen="home"))])


def back_markup(i18n: I18nContext) -> InlineKeyboardMarkup:
    return _keyboard([back_button(i18n)])


def _refresh_row(i18n: I18nContext, screen: str) -> list[InlineKeyboardButton]:
    return [_button(i18n.get("btn-admin-refresh"), AdminCb(screen=screen))]


def _panel(i18n: I18nContext, lines: list[str], *rows: list[InlineKeyboardButton]) -> Screen:
    """A screen of lines whose keyboard ends with the way back to the panel's home."""
    return Screen("\n".join(lines), _keyboard(*rows, [back_button(i18n)]))


def signed_rub(kopecks: int) -> str:
    return ("+" if kopecks > 0 else "") + format_rub(kopecks)


def home(i18n: I18nContext) -> Screen:
    return Screen(
        i18n.get("admin-title"),
        _keyboard(
            [
                _button(i18n.get("btn-admin-stats"), AdminCb(screen="stats")),
                _button(i18n.get("btn-admin-health"), AdminCb(screen="health")),
            ],
            [
                _button(i18n.get("btn-admin-user"), AdminCb(screen="user")),
                _button(i18n.get("btn-admin-promos"), AdminCb(screen="promos")),
            ],
            [
                _button(i18n.get("btn-admin-instances"), AdminCb(screen="inst")),
                _button(i18n.get("btn-admin-broadcast"), AdminCb(screen="bc")),
            ],
            [_button(i18n.get("btn-admin-audit"), AdminCb(screen="audit"))],
            [_button(i18n.get("btn-admin-maintenance"), AdminCb(screen="maint"))],
        ),
    )


def maintenance_screen(i18n: I18nContext, state: Maintenance | None, notice: str | None = None) -> Screen:
    lines = [notice, ""] if notice else []
    if state is None:
        lines.append(i18n.get("admin-maintenance-off"))
        toggle = [_button(i18n.get("btn-admin-maintenance-on"), AdminMaintCb(action="on"))]
    else:
        lines.append(
            i18n.get(
                "admin-maintenance-on",
                since=format_date(datetime.fromtimestamp(state.since, UTC)),
                by=state.by,
            )
        )
        lines.append(state.message or i18n.get("maintenance-text"))
        toggle = [_button(i18n.get("btn-admin-maintenance-off"), AdminMaintCb(action="off"))]
    return _panel(i18n, lines, toggle, _refresh_row(i18n, "maint"))


def maintenance_prompt(i18n: I18nContext) -> Screen:
    return Screen(
        i18n.get("admin-maintenance-prompt", default=i18n.get("maintenance-text")),
        _keyboard(
            [_button(i18n.get("btn-admin-maintenance-default"), AdminMaintCb(action="default"))],
            [_button(i18n.get("btn-admin-cancel"), AdminCb(screen="maint"))],
        ),
    )


def _revenue_row(i18n: I18nContext, row: Revenue) -> str:
    key = f"admin-source-{row.source}"
    name = i18n.get(key) if row.source in ("purchases", "all", "ton", "stars", "cryptobot") else row.source
    return i18n.get(
        "admin-stats-row",
        name=name,
        today=format_rub(row.today),
        week=format_rub(row.week),
        month=format_rub(row.month),
        total=format_rub(row.total),
    )


def stats_screen(i18n: I18nContext, stats: Stats) -> Screen:
    u = stats.users
    lines = [
        i18n.get("admin-stats-title", at=format_date(stats.at)),
        "",
        i18n.get(
            "admin-stats-users",
            total=u.total,
            new=u.new_today,
            active=u.active,
            blocked=u.blocked,
            banned=u.banned,
        ),
        "",
        i18n.get("admin-stats-revenue"),
        _revenue_row(i18n, stats.purchases),
        _revenue_row(i18n, stats.topups_total),
        *(_revenue_row(i18n, row) for row in stats.topups),
        "",
        i18n.get("admin-stats-pending", count=stats.pending_payments, amount=format_rub(stats.pending_kop)),
        i18n.get("admin-stats-unmatched", count=stats.unmatched_ton),
        "",
        *_growth_lines(i18n, stats),
        "",
        i18n.get("admin-stats-instances"),
        *(_load_line(i18n, load) for load in stats.instances),
    ]
    return _panel(i18n, lines, _refresh_row(i18n, "stats"))


def _growth_lines(i18n: I18nContext, stats: Stats) -> list[str]:
    g = stats.growth
    plans = ", ".join(f"{p.plan}: {p.count}" for p in stats.active_by_plan) or i18n.get("admin-none")
    return [
        i18n.get("admin-stats-new", day=g.new_1d, week=g.new_7d, month=g.new_30d),
        i18n.get("admin-stats-trials", day=g.trials_1d, week=g.trials_7d, month=g.trials_30d),
        i18n.get(
            "admin-stats-conversion",
            converted=g.trials_converted,
            trials=g.trials_total,
            share="-" if g.conversion is None else f"{g.conversion:.0%}",
        ),
        i18n.get("admin-stats-by-plan", plans=plans),
        i18n.get("admin-stats-churn", week=g.churned_7d, month=g.churned_30d),
    ]


def _load_line(i18n: I18nContext, load: InstanceLoad) -> str:
    best = f"{min(s.score for s in load.scores):.2f}" if load.scores else "-"
    return i18n.get(
        "admin-stats-instance",
        id=load.id,
        configs=load.configs,
        users=load.users_active,
        usable=load.nodes_usable,
        total=load.nodes_total,
        score=best,
        status=(load.status or "?") + ("" if load.fresh or load.status is None else "*"),
    )


def worker_mark(worker: WorkerStatus) -> str:
    """✅ running and beating; ❔ beating, but supervisord could not be asked; ❌ otherwise."""
    if worker.ok:
        return "✅"
    return "❔" if worker.heartbeat_fresh and worker.supervisor_state == "unknown" else "❌"


def health_screen(i18n: I18nContext, status: Status) -> Screen:
    lines = [
        i18n.get("admin-health-title"),
        "",
        i18n.get(
            "admin-health-deps",
            postgres=status.postgres,
            redis=status.redis,
            schema=status.schema or "none",
            expected=status.schema_expected,
        ),
        "",
    ]
    for worker in status.workers:
        age = (
            i18n.get("admin-health-missing")
            if worker.heartbeat_age is None
            else i18n.get("admin-health-age", seconds=f"{worker.heartbeat_age:.1f}")
        )
        lines.append(
            i18n.get(
                "admin-health-worker",
                mark=worker_mark(worker),
                name=worker.name,
                age=age,
                pid=str(worker.pid or "-"),
                state=worker.supervisor_state,
            )
        )
    verdict = status_verdict(status)
    if status.ok:
        key = "admin-health-ok"
    else:
        key = "admin-health-bad" if "down" in verdict else "admin-health-unknown"
    lines += ["", i18n.get(key)]
    return _panel(i18n, lines, _refresh_row(i18n, "health"))


def _subscription_line(i18n: I18nContext, card: UserCard) -> str:
    until = card.profile.subscription_until
    if until is None:
        return i18n.get("admin-user-sub-none")
    if until <= datetime.now(UTC):
        return i18n.get("admin-user-sub-expired", until=format_date(until))
    return i18n.get(
        "admin-user-sub-active",
        until=format_date(until),
        plan=card.plan_id or i18n.get("admin-none"),
        renew=i18n.get("admin-yes" if card.profile.auto_renew else "admin-no"),
    )


def user_screen(i18n: I18nContext, card: UserCard) -> Screen:
    p = card.profile
    lines = [
        i18n.get(
            "admin-user-head",
            name=p.first_name or str(p.id),
            id=str(p.id),
            username=f"@{p.username}" if p.username else i18n.get("admin-none"),
        ),
        i18n.get(
            "admin-user-meta",
            language=p.language,
            joined=format_date(p.created_at),
            seen=format_date(p.last_seen_at),
        ),
        i18n.get("admin-user-balance", balance=format_rub(p.balance_kop)),
        _subscription_line(i18n, card),
    ]
    if p.is_banned:
        lines.append(i18n.get("admin-user-banned"))
    if p.blocked_at is not None:
        lines.append(i18n.get("admin-user-blocked", at=format_date(p.blocked_at)))
    lines += ["", i18n.get("admin-user-configs", count=len(card.configs))]
    lines += [
        i18n.get(
            "admin-user-config",
            name=c.name,
            instance=c.instance_id,
            status=c.status,
        )
        for c in card.configs
    ]
    if card.payments:
        lines += ["", i18n.get("admin-user-payments")]
        lines += [
            i18n.get(
                "admin-user-payment",
                id=str(pay.id),
                method=pay.method,
                amount=format_rub(pay.amount_kop),
                status=pay.status,
                at=format_date(pay.created_at),
            )
            for pay in card.payments
        ]
    if card.ledger:
        lines += ["", i18n.get("admin-user-ledger")]
        lines += [
            i18n.get(
                "admin-user-entry",
                amount=signed_rub(e.amount_kop),
                kind=e.kind,
                after=format_rub(e.balance_after_kop),
                at=format_date(e.created_at),
                note=(e.note or "")[:NOTE_SHOWN],
            ).rstrip()
            for e in card.ledger
        ]
    ban = (
        _button(i18n.get("btn-admin-unban"), AdminUserCb(action="unban", user_id=p.id))
        if p.is_banned
        else _button(i18n.get("btn-admin-ban"), AdminUserCb(action="ban", user_id=p.id))
    )
    return _panel(
        i18n,
        lines,
        [_button(i18n.get("btn-admin-adjust"), AdminUserCb(action="adjust", user_id=p.id)), ban],
        [_button(i18n.get("btn-admin-user-refresh"), AdminUserCb(action="show", user_id=p.id))],
    )


def open_user_markup(i18n: I18nContext, user_id: int) -> InlineKeyboardMarkup:
    return _keyboard(
        [
            _button(
                i18n.get("btn-admin-open-user", id=str(user_id)), AdminUserCb(action="show", user_id=user_id)
            )
        ],
        [back_button(i18n)],
    )


def adjust_confirm_screen(
    i18n: I18nContext, user_id: int, amount_kop: int, reason: str, token: str
) -> Screen:
    return Screen(
        i18n.get("admin-adjust-confirm", id=str(user_id), amount=signed_rub(amount_kop), reason=reason),
        _keyboard(
            [_button(i18n.get("btn-admin-confirm"), AdminAdjustCb(token=token))],
            [_button(i18n.get("btn-admin-cancel"), AdminCb(screen="home"))],
        ),
    )


def _promo_line(i18n: I18nContext, promo: PromoRow) -> str:
    value = (
        i18n.get("admin-promo-value-balance", amount=format_rub(promo.value))
        if promo.kind == "balance"
        else i18n.get("admin-promo-value-days", days=promo.value)
    )
    uses = f"{promo.uses}/{promo.max_uses if promo.max_uses is not None else '∞'}"
    expires = i18n.get("admin-promo-expires", at=format_date(promo.expires_at)) if promo.expires_at else ""
    return i18n.get("admin-promo-line", code=promo.code, value=value, uses=uses, expires=expires)


def promos_screen(i18n: I18nContext, promos: list[PromoRow], notice: str | None = None) -> Screen:
    lines = [notice, ""] if notice else []
    lines.append(i18n.get("admin-promos-title"))
    lines += [_promo_line(i18n, p) for p in promos] or [i18n.get("admin-promos-empty")]
    buttons = [
        _button(i18n.get("btn-admin-promo-off", code=p.code), AdminPromoCb(code=p.code)) for p in promos
    ]
    return _panel(
        i18n,
        lines,
        *(buttons[i : i + 3] for i in range(0, len(buttons), 3)),
        [_button(i18n.get("btn-admin-promo-new"), AdminCb(screen="promo_new"))],
    )


def _health_text(i18n: I18nContext, line: InstanceLine) -> str:
    health = line.health
    if health is None:
        return i18n.get("admin-instance-health-unknown")
    if health.status == "up":
        text = i18n.get(
            "admin-instance-up", usable=health.nodes_usable, total=health.nodes_total or health.nodes_usable
        )
    elif health.status == "down":
        text = i18n.get("admin-instance-down", error=health.error[:ERROR_SHOWN])
    else:
        text = escape(health.status)
    # Markup: put into the instance line as it is (escaped values, catalog tags kept).
    return text if health.fresh else Markup("{} {}").format(text, i18n.get("admin-instance-stale"))


def instances_screen(i18n: I18nContext, lines: list[InstanceLine], notice: str | None = None) -> Screen:
    text = [notice, ""] if notice else []
    text.append(i18n.get("admin-instances-title"))
    if not lines:
        text.append(i18n.get("admin-instances-empty"))
    rows = []
    for line in lines:
        i = line.instance
        healthy = line.health is not None and line.health.status == "up"
        text.append(
            i18n.get(
                "admin-instance-line",
                mark="🟢" if i.is_active and healthy else ("⚪️" if not i.is_active else "🔴"),
                id=i.id,
                name=i.name,
                state=i18n.get("admin-instance-active" if i.is_active else "admin-instance-inactive"),
                priority=i.priority,
                configs=line.configs,
                health=_health_text(i18n, line),
            )
        )
        toggle = (
            _button(i18n.get("btn-admin-inst-disable", id=i.id), AdminInstCb(action="off", instance_id=i.id))
            if i.is_active
            else _button(
                i18n.get("btn-admin-inst-enable", id=i.id), AdminInstCb(action="on", instance_id=i.id)
            )
        )
        drain = _button(
            i18n.get("btn-admin-inst-drain", id=i.id), AdminInstCb(action="drain", instance_id=i.id)
        )
        rows.append([toggle, drain])
        if line.scores:
            shown = ", ".join(f"{escape(n.node)} {n.score:.2f}" for n in line.scores[:NODES_SHOWN])
            text.append(i18n.get("admin-instance-scores", scores=Markup(shown)))
        if i.excluded_node_names:
            text.append(i18n.get("admin-instance-excluded", nodes=", ".join(i.excluded_node_names)))
        nodes = [
            _button(
                i18n.get("btn-admin-node-exclude", id=i.id), AdminNodeCb(action="exclude", instance_id=i.id)
            )
        ]
        # By position in the excluded list as shown: the handler names the node it included.
        nodes += [
            _button(
                i18n.get("btn-admin-node-include", node=name[:NODE_LABEL]),
                AdminNodeCb(action="include", instance_id=i.id, index=n),
            )
            for n, name in enumerate(i.excluded_node_names[:NODES_SHOWN])
        ]
        rows += [nodes[k : k + 3] for k in range(0, len(nodes), 3)]
    poke = [_button(i18n.get("btn-admin-balancer-poke"), AdminNodeCb(action="poke"))]
    return _panel(i18n, text, *rows, poke, _refresh_row(i18n, "inst"))


def drain_confirm_screen(i18n: I18nContext, line: InstanceLine) -> Screen:
    instance_id = line.instance.id
    return Screen(
        i18n.get("admin-drain-confirm", id=instance_id, configs=line.configs),
        _keyboard(
            [
                _button(
                    i18n.get("btn-admin-inst-drain", id=instance_id),
                    AdminInstCb(action="drain_yes", instance_id=instance_id),
                )
            ],
            [_button(i18n.get("btn-admin-cancel"), AdminCb(screen="inst"))],
        ),
    )


def drain_report_screen(i18n: I18nContext, report: DrainReport) -> Screen:
    lines = [
        i18n.get(
            "admin-drain-done",
            id=report.instance_id,
            moved=report.moved,
            deleted=report.deleted,
            skipped=report.skipped,
            failed=len(report.failed),
        )
    ]
    if report.failed:
        lines.append(i18n.get("admin-drain-incomplete"))
    return Screen(
        "\n".join(lines), _keyboard([_button(i18n.get("btn-admin-instances"), AdminCb(screen="inst"))])
    )


AUDIENCE_ROWS = (("all", "active"), ("expired", "trial"), ("never_paid",))
LANGUAGE_CHOICES = ("any", "en", "ru")


def audience_name(i18n: I18nContext, audience: str, language: str | None) -> str:
    name = i18n.get(f"admin-audience-{audience.replace('_', '-')}")
    return (
        name
        if language is None
        else i18n.get("admin-audience-with-language", audience=name, language=language)
    )


def broadcast_audience_screen(i18n: I18nContext, counts: dict[str, int], language: str | None) -> Screen:
    """Choose who gets it: each audience with how many it reaches now, a language filter."""
    chosen = language or "any"
    rows = [
        [
            _button(
                i18n.get(
                    "btn-admin-audience",
                    name=i18n.get(f"admin-audience-{a.replace('_', '-')}"),
                    count=counts[a],
                ),
                AdminBcCb(action="aud", token=a),
            )
            for a in row
        ]
        for row in AUDIENCE_ROWS
    ]
    languages = [
        _button(
            ("✅ " if code == chosen else "") + i18n.get(f"btn-admin-language-{code}"),
            AdminBcCb(action="lang", token=code),
        )
        for code in LANGUAGE_CHOICES
    ]
    title = i18n.get("admin-broadcast-audience", language=i18n.get(f"btn-admin-language-{chosen}"))
    return _panel(i18n, [title], *rows, languages)


def broadcast_button_screen(i18n: I18nContext, screens: list[str]) -> Screen:
    return Screen(
        i18n.get("admin-broadcast-button-prompt", screens=", ".join(screens)),
        _keyboard(
            [_button(i18n.get("btn-admin-broadcast-no-button"), AdminBcCb(action="nobutton"))],
            [_button(i18n.get("btn-admin-cancel"), AdminCb(screen="home"))],
        ),
    )


def broadcast_confirm_screen(
    i18n: I18nContext, count: int, token: str, audience: str = "all", language: str | None = None
) -> Screen:
    return Screen(
        i18n.get("admin-broadcast-preview", count=count, audience=audience_name(i18n, audience, language)),
        _keyboard(
            [_button(i18n.get("btn-admin-broadcast-send"), AdminBcCb(action="send", token=token))],
            [_button(i18n.get("btn-admin-cancel"), AdminCb(screen="home"))],
        ),
    )


def _progress_markup(i18n: I18nContext, broadcast_id: int, *, running: bool = True) -> InlineKeyboardMarkup:
    refresh = [
        _button(
            i18n.get("btn-admin-broadcast-progress"),
            AdminBcCb(action="progress", broadcast_id=broadcast_id),
        )
    ]
    if running:
        refresh.append(
            _button(
                i18n.get("btn-admin-broadcast-cancel"), AdminBcCb(action="cancel", broadcast_id=broadcast_id)
            )
        )
    return _keyboard(refresh, [back_button(i18n)])


def broadcast_queued_screen(i18n: I18nContext, broadcast_id: int, count: int, replayed: bool) -> Screen:
    key = "admin-broadcast-replayed" if replayed else "admin-broadcast-queued"
    return Screen(i18n.get(key, id=str(broadcast_id), count=count), _progress_markup(i18n, broadcast_id))


def broadcast_progress_screen(i18n: I18nContext, progress: Progress, notice: str | None = None) -> Screen:
    lines = [notice, ""] if notice else []
    lines += [
        i18n.get(
            "admin-broadcast-progress",
            id=str(progress.id),
            total=progress.total,
            sent=progress.sent,
            pending=progress.pending,
            failed=progress.failed,
            skipped=progress.skipped,
        ),
        i18n.get(
            "admin-broadcast-audience-line",
            audience=audience_name(i18n, progress.audience, progress.language),
        ),
    ]
    if progress.cancelled_at is not None:
        lines.append(i18n.get("admin-broadcast-cancelled", count=progress.cancelled))
    elif progress.queued_at is None:
        lines.append(i18n.get("admin-broadcast-queuing"))
    elif progress.finished:
        lines.append(i18n.get("admin-broadcast-finished"))
    running = progress.cancelled_at is None and not progress.finished
    return Screen("\n".join(lines), _progress_markup(i18n, progress.id, running=running))
