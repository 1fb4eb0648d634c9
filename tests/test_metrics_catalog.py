"""The series of orbit/metrics.py: one registry per process, recorded through the active
one, and the Grafana dashboard (docs/grafana-dashboard.json) reads only series that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from orbit import metrics
from orbit.metrics import COUNTERS, GAUGES, HISTOGRAMS, Metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"


def test_each_process_has_its_own_registry_and_only_its_series() -> None:
    bot, janitor = Metrics("bot"), Metrics("janitor")
    bot.inc("payments_total", method="stars", status="confirmed")
    assert bot.value("payments_total", method="stars", status="confirmed") == 1
    assert janitor.value("payments_total", method="stars", status="confirmed") == 0
    assert "orbit_updates_total" in bot.render() and "orbit_updates_total" not in janitor.render()
    assert "orbit_janitor_chore_runs_total" in janitor.render()


def test_domain_code_records_into_the_active_registry_only() -> None:
    metrics.count("ledger_entries_total", reason="topup")  # none active: nothing, no error
    mine = Metrics("ton_watcher")
    token = metrics.activate(mine)
    try:
        metrics.count("ledger_entries_total", reason="topup")
        metrics.observe("panel_request_duration_seconds", 0.2, instance="s001")
    finally:
        metrics._active.reset(token)
    assert mine.value("ledger_entries_total", reason="topup") == 1
    assert mine.value("panel_request_duration_seconds", instance="s001") == 1


def test_no_label_is_a_user_id() -> None:
    labels = {label for table in (COUNTERS, GAUGES) for _, names in table.values() for label in names}
    labels |= {label for _, names, _ in HISTOGRAMS.values() for label in names}
    assert not {label for label in labels if "user" in label or label in ("chat", "chat_id", "id")}


def test_the_dashboard_reads_declared_series_through_its_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variable = dashboard["templating"]["list"][0]
    assert [variable[k] for k in ("name", "type", "query")] == ["datasource", "datasource", "prometheus"]
    declared = {f"orbit_{name}" for name in (*COUNTERS, *GAUGES, *HISTOGRAMS)}
    used: set[str] = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"orbit_[a-z_]+", target["expr"]):
                used.add(re.sub(r"_(bucket|count|sum)$", "", name))
    assert used <= declared, used - declared
    # The series an operator looks at first are all on it.
    for series in ("updates_total", "update_duration_seconds", "ratelimit_refused_total",
                   "payments_total", "payments_credited_kopecks_total", "ledger_entries_total",
                   "outbox_depth", "outbox_oldest_due_age_seconds", "telegram_retry_after_total",
                   "panel_request_duration_seconds", "panel_errors_total", "balancer_node_score",
                   "panel_up", "janitor_chore_runs_total", "janitor_chore_duration_seconds",
                   "janitor_chore_failures_total", "ton_lag_seconds", "ton_cursor_lt", "lease_held",
                   "dependency_errors_total"):  # fmt: skip
        assert f"orbit_{series}" in used, series


def test_what_domain_code_records_exists_in_every_process() -> None:
    """`orbit.metrics.count/observe` run in whichever process called the domain code: a
    series one process lacks would raise there."""
    root = Path(__file__).resolve().parents[1] / "orbit"
    recorded = {
        match[1]
        for path in root.rglob("*.py")
        for match in re.finditer(r"(?<![.\w])metrics\.(?:count|observe)\(\s*\"([a-z_]+)\"", path.read_text())
    }
    assert {"ledger_entries_total", "payments_total", "panel_request_duration_seconds"} <= recorded
    for process in ("bot", "ton_watcher", "balancer", "janitor"):
        registry = Metrics(process)
        for name in recorded:  # no KeyError
            if name in COUNTERS:
                registry.inc(name, **dict.fromkeys(COUNTERS[name][1], "x"))
            else:
                registry.observe(name, 0.1, **dict.fromkeys(HISTOGRAMS[name][1], "x"))
