"""A Telegram user driving the real bot through the emulator's control API."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from orbit.sandbox.telegram_control import CallbackAnswer, ShownMessage, TelegramControl


class TelegramUser:
    def __init__(
        self,
        control: TelegramControl,
        user_id: int,
        *,
        language_code: str = "en",
        first_name: str = "Tester",
        username: str | None = None,
    ) -> None:
        self.control = control
        self.id = user_id
        self.profile = {"language_code": language_code, "first_name": first_name}
        if username:
            self.profile["username"] = username

    async def messages(self) -> list[ShownMessage]:
        """What the chat shows now, bot messages only, oldest first."""
        return [m for m in await self.control.messages(self.id) if m.from_bot and not m.deleted]

    async def last(self) -> ShownMessage:
        shown = await self.messages()
        assert shown, f"user {self.id} has been shown nothing"
        return shown[-1]

    async def send(self, text: str, *, timeout: float = 10.0) -> ShownMessage:
        """Send text; return the first message the bot sends or edits in reply."""
        seq = await self.control.last_seq(self.id)
        await self.control.send_text(self.id, text, **self.profile)
        events = await self.control.wait_for(self.id, after_seq=seq, timeout=timeout)
        return events[-1].message

    async def send_silently(self, text: str) -> None:
        """Send text without waiting for a reply (rate-limit and race tests)."""
        await self.control.send_text(self.id, text, **self.profile)

    async def press(
        self,
        button_text: str | None = None,
        *,
        data: str | None = None,
        message_id: int | None = None,
        forge: bool = False,
        timeout: float = 10.0,
    ) -> CallbackAnswer:
        """Press a button (of the last bot message by default); wait until the bot
        answered the callback, which it does after its handler finished."""
        if message_id is None and not forge:
            message_id = (await self.last_with_button(button_text, data)).message_id
        pressed = await self.control.press(
            self.id, message_id=message_id, data=data, button_text=button_text, forge=forge
        )
        answer = await self.control.callback_answer(pressed.callback_query_id, timeout=timeout)
        assert answer.answered, f"button {button_text or data} was never answered"
        return answer

    async def last_with_button(self, text: str | None, data: str | None = None) -> ShownMessage:
        for message in reversed(await self.messages()):
            for row in message.buttons:
                for button in row:
                    if (text is not None and button.text == text) or (
                        data is not None and button.callback_data == data
                    ):
                        return message
        raise AssertionError(f"no message of user {self.id} has a button {text or data!r}")

    async def wait_until(
        self, predicate: Callable[[list[ShownMessage]], bool], timeout: float = 10.0
    ) -> list[ShownMessage]:
        deadline = time.monotonic() + timeout
        while True:
            shown = await self.messages()
            if predicate(shown):
                return shown
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                texts = [m.text or m.caption for m in shown[-3:]]
                raise AssertionError(f"condition not met for user {self.id}; last shown: {texts}")
            seq = await self.control.last_seq(self.id)
            with contextlib.suppress(TimeoutError):
                await self.control.wait_for(self.id, after_seq=seq, timeout=min(remaining, 2.0))
