"""A promo code as an admin types it in the bot: `CODE balance 100 [MAX_USES]` or
`CODE days 30 [MAX_USES]`. Creating it is `orbit.promos.service.create_promo`."""

from __future__ import annotations

import msgspec

from orbit.admin.errors import AdminError, InvalidPromoLine
from orbit.admin.users import parse_amount
from orbit.promos.service import KINDS


class PromoSpec(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    kind: str
    value: int  # kopecks for balance, days for days
    max_uses: int | None


def parse_promo_line(line: str) -> PromoSpec:
    parts = line.split()
    if len(parts) not in (3, 4):
        raise InvalidPromoLine("expected: CODE balance|days VALUE [MAX_USES]")
    code, kind, raw_value = parts[0], parts[1].lower(), parts[2]
    if kind not in KINDS:
        raise InvalidPromoLine(f"the kind must be one of {', '.join(KINDS)}, got {parts[1][:20]!r}")
    if kind == "days":
        if not (raw_value.isascii() and raw_value.isdigit()) or int(raw_value) <= 0:
            raise InvalidPromoLine(f"days must be a positive whole number, got {raw_value[:20]!r}")
        value = int(raw_value)
    else:
        try:
            value = parse_amount(raw_value)
        except AdminError as exc:
            raise InvalidPromoLine(str(exc)) from None
        if value <= 0:
            raise InvalidPromoLine(f"the amount must be positive, got {raw_value[:20]!r}")
    max_uses = None
    if len(parts) == 4:
        raw_uses = parts[3]
        if not (raw_uses.isascii() and raw_uses.isdigit()) or not 0 < int(raw_uses) <= 10_000_000:
            raise InvalidPromoLine(f"max uses must be a positive whole number, got {raw_uses[:20]!r}")
        max_uses = int(raw_uses)
    return PromoSpec(code=code, kind=kind, value=value, max_uses=max_uses)
