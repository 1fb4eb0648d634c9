"""Subscription plans from `plans.json`, with prices overridable by `SUB_<N>M_PRICE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from orbit.money import rub_to_kopecks
from orbit.settings import Settings

PLAN_IDS = ("1m", "3m", "6m", "12m")
# Marzban's names: how often the panel zeroes a user's used traffic by itself.
ResetStrategy = Literal["no_reset", "day", "week", "month", "year"]


class PlanError(Exception):
    """`plans.json` is missing, unreadable or inconsistent."""


class Plan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    months: Annotated[int, msgspec.Meta(gt=0, le=120)]
    days: Annotated[int, msgspec.Meta(gt=0, le=3660)]
    price_rub: Annotated[int, msgspec.Meta(gt=0, le=1_000_000)]
    max_configs: Annotated[int, msgspec.Meta(gt=0, le=100)]
    data_limit_gb: Annotated[int, msgspec.Meta(ge=0)] = 0  # per config; 0 = unlimited
    # Pushed to the panel users with the limit (no effect on an unlimited plan).
    data_limit_reset_strategy: ResetStrategy = "no_reset"
    # A purchase zeroes the used traffic of the user's data-limited configs on their
    # panels (Marzban keeps a `limited` user limited when only `expire` moves).
    reset_traffic_on_renewal: bool = True

    @property
    def price(self) -> int:
        """Price in kopecks."""
        return rub_to_kopecks(self.price_rub)

    @property
    def data_limit_bytes(self) -> int:
        return self.data_limit_gb * 1024**3


class PlansFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    plans: list[Plan]


class Plans(msgspec.Struct, frozen=True):
    by_id: dict[str, Plan]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_id[p] for p in PLAN_IDS if p in self.by_id)

    def get(self, plan_id: str) -> Plan | None:
        return self.by_id.get(plan_id)


def load_plans(settings: Settings, path: str | Path | None = None) -> Plans:
    path = Path(path or settings.plans_file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"plans file {path} cannot be read: {exc.strerror}") from None
    try:
        parsed = msgspec.json.decode(raw, type=PlansFile)
    except msgspec.DecodeError as exc:
        raise PlanError(f"plans file {path} is invalid: {exc}") from None
    by_id: dict[str, Plan] = {}
    for plan in parsed.plans:
        if plan.id not in PLAN_IDS:
            raise PlanError(f"plans file {path}: unknown plan id {plan.id!r}, expected {PLAN_IDS}")
        if plan.id in by_id:
            raise PlanError(f"plans file {path}: plan {plan.id!r} appears twice")
        override = getattr(settings, f"sub_{plan.id}_price")
        if override is not None:
            plan = msgspec.structs.replace(plan, price_rub=override)
        by_id[plan.id] = plan
    missing = [p for p in PLAN_IDS if p not in by_id]
    if missing:
        raise PlanError(f"plans file {path}: missing plans {', '.join(missing)}")
    return Plans(by_id=by_id)
