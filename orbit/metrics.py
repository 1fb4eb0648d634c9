"""Prometheus series of one process: a `Metrics` object built by the runtime at start.

Every series is declared here (names `orbit_...`, units in the name, labels bounded
by the code or the admins: never a user id), so a reader finds them in one place
and `docs/grafana-dashboard.json` can rely on them. Each process owns its own
`CollectorRegistry` (prometheus_client's default registry is an import-time global
and would mix the series of tests running in one interpreter).

Domain code (the ledger, payments, the Marzban client) is called from every process
through many business functions; rather than add a `metrics` parameter to each, it
records through `count()`/`observe()`, which reach the `Metrics` that `runtime.run`
activated for the process's context (a ContextVar, inherited by every task the
process starts). Where none is active (the CLI, most tests) they do nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
SCRAPE_REFRESH_TIMEOUT = 2.0  # seconds for the scrape-time queries (outbox depth)

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# name (without `orbit_`) -> (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    # bot: updates and handlers
    "updates_total": ("Telegram updates handled, by update type and outcome", ("type", "outcome")),
    "ratelimit_refused_total": ("Presses and messages refused by a rate limit", ("action",)),
    "ratelimit_redis_errors_total": ("Rate-limit checks skipped because Redis failed", ()),
    "fsm_redis_errors_total": ("FSM state reads that failed on Redis", ()),
    "group_updates_dropped_total": ("Updates from groups and channels, dropped", ("chat_type",)),
    "users_blocked_total": ("Replies that found the user had blocked the bot", ()),
    "handler_flood_total": ("Handlers cut short by a Telegram flood wait", ()),
    "handler_errors_total": ("Handlers that failed, by exception class", ("kind",)),
    "menu_hints_total": ("Unknown messages answered with the /menu hint", ()),
    "trials_total": ("Free trials taken", ()),
    "channel_gate_errors_total": ("Channel-membership checks that failed", ()),
    "purchases_total": ("Plans bought from the bot", ("plan",)),
    "purchases_refused_total": ("Purchases refused", ("reason",)),
    "http_refused_total": ("HTTP requests or connections refused by the listener limits", ("reason",)),
    "cryptobot_webhooks_total": ("Crypto Pay webhook calls, by outcome", ("outcome",)),
    "webhook_requests_total": ("Telegram webhook requests, by answer (orbit/bot/webhook.py)", ("outcome",)),
    # sends to Telegram (replies through the send budget, the outbox sender)
    "telegram_requests_total": ("Bot API requests sent through the send budget", ("method",)),
    "telegram_edits_coalesced_total": ("Edits of one message merged while they waited", ()),
    "telegram_retry_after_total": ("429 answers from Telegram, by what followed", ("outcome",)),
    "send_budget_redis_errors_total": ("Send-budget decisions made without Redis", ()),
    "outbox_messages_total": ("Outbox rows handled, by outcome (sent, retried, failed, ...)", ("outcome",)),
    # money
    "payments_total": ("Payments by method and the status they moved to", ("method", "status")),
    "payments_credited_kopecks_total": ("Money credited by confirmed payments, RUB kopecks", ("method",)),
    "ledger_entries_total": (
        "Ledger entries written (not replays), by reason; counted before the commit",
        ("reason",),
    ),
    # Marzban panels
    "panel_errors_total": ("Failed panel requests, by instance and error", ("instance", "error")),
    # every process
    "units_total": ("Units of work (ticks) by outcome", ("outcome",)),
    "dependency_errors_total": ("Errors talking to Postgres or Redis", ("dependency",)),
    # janitor
    "janitor_chore_runs_total": ("Janitor chore runs", ("chore",)),
    "janitor_chore_failures_total": ("Janitor chore runs that failed", ("chore",)),
    "janitor_chore_items_total": ("Items a janitor chore handled (reminders queued, ...)", ("chore",)),
    # TON watcher
    "ton_transactions_total": ("Wallet transactions the watcher stored, by outcome", ("outcome",)),
}

HISTOGRAMS: dict[str, tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    "update_duration_seconds": ("Time to handle one Telegram update", ("type",), _FAST),
    "panel_request_duration_seconds": ("One HTTP request to a Marzban panel", ("instance",), _FAST),
    "unit_duration_seconds": ("One unit of work (tick) of this process", (), _SLOW),
    "janitor_chore_duration_seconds": ("One run of a janitor chore", ("chore",), _SLOW),
}

GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "heartbeat_timestamp_seconds": ("Unix time of this process's last heartbeat write", ()),
    "lease_held": ("1 while this process holds its single-active lease", ("lease",)),
    "outbox_depth": ("Outbox rows pending, and of those due now", ("state",)),
    "outbox_oldest_due_age_seconds": ("How long the oldest due outbox row has waited", ()),
    "balancer_node_score": ("Load score of a panel node (lower wins)", ("instance", "node")),
    "panel_up": ("1 if the balancer's last probe of the panel answered, 0 if not", ("instance",)),
    "panel_nodes_usable": ("Nodes of a panel that can take users", ("instance",)),
    "balancer_refresh_timestamp_seconds": ("Unix time of the balancer's last refresh", ()),
    "ton_cursor_lt": ("Logical time of the last wallet transaction the watcher processed", ()),
    "ton_caught_up_timestamp_seconds": ("Unix time the watcher last reached the wallet's newest tx", ()),
    "ton_lag_seconds": ("Seconds since the watcher last reached the wallet's newest transaction", ()),
}


_BOT = (
    "updates_total", "update_duration_seconds", "ratelimit_refused_total", "ratelimit_redis_errors_total",
    "fsm_redis_errors_total", "group_updates_dropped_total", "users_blocked_total", "handler_flood_total",
    "handler_errors_total", "menu_hints_total", "trials_total", "channel_gate_errors_total",
    "purchases_total", "purchases_refused_total", "http_refused_total", "cryptobot_webhooks_total",
    "webhook_requests_total",
    "telegram_requests_total", "telegram_edits_coalesced_total", "telegram_retry_after_total",
    "send_budget_redis_errors_total", "outbox_messages_total", "outbox_depth",
    "outbox_oldest_due_age_seconds",
)  # fmt: skip
_BALANCER = ("balancer_node_score", "panel_up", "panel_nodes_usable", "balancer_refresh_timestamp_seconds")
# Series only one process records (the rest, money, panels and the runtime's, are everyone's).
ONLY_IN: dict[str, tuple[str, ...]] = {
    **{name: ("bot",) for name in _BOT},
    **{name: ("janitor",) for name in (*COUNTERS, *HISTOGRAMS) if name.startswith("janitor_")},
    **{name: ("ton_watcher",) for name in (*COUNTERS, *GAUGES) if name.startswith("ton_")},
    **{name: ("balancer",) for name in _BALANCER},
    "lease_held": ("ton_watcher", "balancer"),
}


class Metrics:
    """`process`: only the series that process records (None: all, for tests)."""

    def __init__(self, process: str | None = None) -> None:
        # No `_created` sample per series (prometheus_client's switch is process-wide;
        # no Orbit series wants one): half the scrape, and a counter reads as one line.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)

        def mine(name: str) -> bool:
            return process is None or process in ONLY_IN.get(name, (process,))

        self._counters = {
            name: Counter(f"orbit_{name}", text, labels, registry=self.registry)
            for name, (text, labels) in COUNTERS.items()
            if mine(name)
        }
        self._histograms = {
            name: Histogram(f"orbit_{name}", text, labels, buckets=buckets, registry=self.registry)
            for name, (text, labels, buckets) in HISTOGRAMS.items()
            if mine(name)
        }
        self._gauges = {
            name: Gauge(f"orbit_{name}", text, labels, registry=self.registry)
            for name, (text, labels) in GAUGES.items()
            if mine(name)
        }
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        # Counters' and histograms' children by (name, *label pairs); never removed, as
        # their labels are bounded (gauges, which `replace` clears, are not cached).
        self._children: dict[tuple[object, ...], Any] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:  # prometheus_client's labels() costs more than the increment
            counter = self._counters[name]
            child = self._children[key] = counter.labels(**labels) if labels else counter
        child.inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            histogram = self._histograms[name]
            child = self._children[key] = histogram.labels(**labels) if labels else histogram
        child.observe(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        gauge = self._gauges[name]
        (gauge.labels(**labels) if labels else gauge).set(value)

    def replace(self, name: str, values: dict[tuple[str, ...], float]) -> None:
        """Set a labelled gauge to exactly `values` (label values -> value): label sets
        not in it (a node removed from a panel) disappear."""
        gauge = self._gauges[name]
        gauge.clear()
        for label_values, value in values.items():
            gauge.labels(*label_values).set(value)

    def render(self) -> str:
        """The exposition text as it stands (no scrape-time refresh): for tests and benches."""
        return generate_latest(self.registry).decode()

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when it was never recorded); histograms: their count."""
        sample = f"orbit_{name}_count" if name in self._histograms else f"orbit_{name}"
        return self.registry.get_sample_value(sample, labels) or 0.0

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run `refresh` (it sets gauges from a query) before each scrape, not per request."""
        self._refreshers.append(refresh)

    async def scrape(self) -> bytes:
        for refresh in self._refreshers:
            try:
                async with asyncio.timeout(SCRAPE_REFRESH_TIMEOUT):
                    await refresh()
            except Exception as exc:  # a stale gauge is better than no scrape
                log.warning("metrics refresh %s failed: %r", getattr(refresh, "__name__", refresh), exc)
        return generate_latest(self.registry)


# A handle, not state: which Metrics is active is per context (see the module docstring).
_active: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar("orbit_metrics", default=None)


def activate(metrics: Metrics) -> contextvars.Token[Metrics | None]:
    return _active.set(metrics)


def active() -> Metrics | None:
    return _active.get()


def count(name: str, amount: float = 1, **labels: str) -> None:
    metrics = _active.get()
    if metrics is not None:
        metrics.inc(name, amount, **labels)


def observe(name: str, value: float, **labels: str) -> None:
    metrics = _active.get()
    if metrics is not None:
        metrics.observe(name, value, **labels)
