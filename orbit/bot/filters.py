"""Message filters, as coroutines.

aiogram runs a filter that is a plain callable, a bare `F...` magic filter
included, in a worker thread (`asyncio.to_thread`) each time it is checked.
These are `async def`, so a check stays on the event loop.
"""

from __future__ import annotations

from aiogram.types import Message


async def text_input(message: Message) -> bool:
    """Text that is not a command: a command leaves a text-input flow instead."""
    return message.text is not None and not message.text.startswith("/")


async def not_text(message: Message) -> bool:
    """A photo, a sticker, anything but text."""
    return message.text is None


async def not_command(message: Message) -> bool:
    return not (message.text or "").startswith("/")


async def successful_payment(message: Message) -> bool:
    return message.successful_payment is not None


async def refunded_payment(message: Message) -> bool:
    return message.refunded_payment is not None
