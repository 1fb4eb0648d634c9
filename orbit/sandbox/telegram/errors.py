"""Errors: the Bot API's error answers, and the control API's."""

from __future__ import annotations

from typing import Any


class BotApiError(Exception):
    """An error answer of the Bot API: HTTP status = error_code."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(message: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {message}")


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
