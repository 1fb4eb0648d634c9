"""Refusals of an admin action. Each names its catalog key (admin.ftl) and the
placeholders the bot shows; `str()` is the English line the CLI prints."""

from __future__ import annotations

from typing import Any


class AdminError(Exception):
    message_key = "admin-error"

    def __init__(self, text: str, **params: Any) -> None:
        super().__init__(text)
        self.params = params


class InvalidAmount(AdminError):
    message_key = "admin-amount-invalid"

    def __init__(self, raw: str) -> None:
        super().__init__(f"the amount must be RUB like 100, -50 or 99.50, got {raw!r}")


class ZeroAmount(AdminError):
    message_key = "admin-amount-zero"

    def __init__(self) -> None:
        super().__init__("the amount must not be zero")


class AmountTooLarge(AdminError):
    message_key = "admin-amount-too-large"

    def __init__(self, limit_rub: str) -> None:
        super().__init__(f"the amount is larger than {limit_rub} RUB: a typo?", limit=limit_rub)


class InvalidUserRef(AdminError):
    message_key = "admin-user-ref-invalid"

    def __init__(self, raw: str) -> None:
        super().__init__(f"expected a Telegram id or @username, got {raw!r}")


class UserNotFound(AdminError):
    message_key = "admin-user-not-found"

    def __init__(self, ref: int | str) -> None:
        shown = f"@{ref}" if isinstance(ref, str) else str(ref)
        super().__init__(f"unknown user {shown}", user=shown)


class EmptyReason(AdminError):
    message_key = "admin-reason-empty"

    def __init__(self, limit: int) -> None:
        super().__init__(f"a reason is required (up to {limit} characters)", limit=limit)


class WouldGoNegative(AdminError):
    message_key = "admin-adjust-negative"

    def __init__(self, user_id: int, balance: str, needed: str) -> None:
        super().__init__(
            f"refused: user {user_id} has {balance} RUB, cannot take {needed} RUB",
            balance=balance,
            needed=needed,
        )


class CannotBanAdmin(AdminError):
    message_key = "admin-ban-admin"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} is an admin (ADMIN_IDS): not banned")


class EmptyText(AdminError):
    message_key = "admin-broadcast-empty"

    def __init__(self) -> None:
        super().__init__("the broadcast text is empty")


class TextTooLong(AdminError):
    message_key = "admin-broadcast-too-long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"the broadcast text is {length} characters; Telegram takes at most {limit}",
            length=length,
            limit=limit,
        )


class BroadcastNotFound(AdminError):
    message_key = "admin-broadcast-not-found"

    def __init__(self, broadcast_id: int) -> None:
        super().__init__(f"no broadcast #{broadcast_id}", id=broadcast_id)


class InvalidPromoLine(AdminError):
    message_key = "admin-promo-line-invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason=reason)


class InvalidAudience(AdminError):
    message_key = "admin-broadcast-audience-invalid"

    def __init__(self, raw: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown {raw!r}: one of {', '.join(known)}", value=raw)


class InvalidButton(AdminError):
    message_key = "admin-broadcast-button-invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason=reason)


class InvalidNode(AdminError):
    message_key = "admin-node-invalid"

    def __init__(self, name: str) -> None:
        super().__init__(f"no such node to change: {name!r}", node=name)
