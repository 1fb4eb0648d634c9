"""Messages in chats: storing them, their versions, and how the bot and the user see them."""

from __future__ import annotations

from typing import Any

import msgspec

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.constants import BLOCKED
from orbit.sandbox.telegram.errors import BotApiError, _bad
from orbit.sandbox.telegram.formatting import HtmlParseError, parse_html
from orbit.sandbox.telegram.params import _buttons, _check_markup, _Params
from orbit.sandbox.telegram.state import _Chat, _StoredFile, _StoredMessage, _World
from orbit.sandbox.telegram.wire import Document, Invoice, Message, User


class _Messages:
    """Adding, editing and showing messages; the events a chat records."""

    # --- messages ------------------------------------------------------------------------

    def _target_chat(self, world: _World, params: _Params) -> _Chat:
        chat_id = params.chat_id()
        chat = world.chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if chat_id in world.blocked:
            raise BotApiError(403, BLOCKED)
        return chat

    def _add_message(
        self, world: _World, chat: _Chat, *, from_bot: bool, kind: str, **fields: Any
    ) -> _StoredMessage:
        message = _StoredMessage(
            message_id=chat.next_message_id,
            chat_id=chat.chat_id,
            date=self._now(),
            from_bot=from_bot,
            kind=kind,
            **fields,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        self._event(world, chat, message, "sent" if from_bot else "received")
        return message

    def _event(self, world: _World, chat: _Chat, message: _StoredMessage, kind: str) -> None:
        message.seq = world.next_seq()
        chat.events.append(
            ctl.ChatEvent(
                seq=message.seq,
                kind=kind,  # type: ignore[arg-type]
                message_id=message.message_id,
                message=self._shown(message),
            )
        )
        world.changes.notify()

    def _edit(self, world: _World, chat: _Chat, message: _StoredMessage, **changes: Any) -> None:
        message.history.append(
            ctl.MessageVersion(
                date=message.edit_date or message.date,
                text=message.text,
                entities=message.entities,
                caption=message.caption,
                reply_markup=message.reply_markup,
            )
        )
        for name, value in changes.items():
            setattr(message, name, value)
        message.edit_date = self._now()
        self._event(world, chat, message, "edited")

    def _wire(self, world: _World, message: _StoredMessage, *, nested: bool = False) -> Message:
        reply_to = None
        if message.reply_to is not None and not nested:
            original = world.chats[message.chat_id].messages.get(message.reply_to)
            if original is not None and not original.deleted:
                reply_to = self._wire(world, original, nested=True)
        spec = message.invoice
        chat = world.chat(message.chat_id)
        if message.from_bot:
            sender: User | None = world.bot_user()
        elif chat.type == "channel":
            sender = None  # a channel post is signed by the channel (`sender_chat`)
        else:
            sender = world.user(message.sender_id or message.chat_id)
        return Message(
            message_id=message.message_id,
            date=message.date,
            chat=chat,
            from_=sender,
            sender_chat=chat if chat.type == "channel" else None,
            edit_date=message.edit_date,
            reply_to_message=reply_to,
            text=message.text,
            entities=message.entities,
            link_preview_options=message.link_preview_options,
            caption=message.caption,
            caption_entities=message.caption_entities,
            photo=list(message.photo.sizes) if message.photo else None,
            document=self._document(message.document) if message.document else None,
            invoice=Invoice(
                title=spec.title,
                description=spec.description,
                start_parameter=spec.start_parameter,
                currency=spec.currency,
                total_amount=spec.amount,
            )
            if spec
            else None,
            successful_payment=message.successful_payment,
            refunded_payment=message.refunded_payment,
            reply_markup=message.inline_markup,
        )

    @staticmethod
    def _document(stored: _StoredFile) -> Document:
        return Document(
            file_id=stored.file_id,
            file_unique_id=stored.file_unique_id,
            file_name=stored.file_name,
            mime_type=stored.mime_type,
            file_size=stored.size,
        )

    def _shown(self, message: _StoredMessage) -> ctl.ShownMessage:
        photo = message.photo
        spec = message.invoice
        return ctl.ShownMessage(
            message_id=message.message_id,
            chat_id=message.chat_id,
            seq=message.seq,
            date=message.date,
            from_bot=message.from_bot,
            kind=message.kind,
            text=message.text,
            entities=message.entities,
            parse_mode=message.parse_mode,
            source_text=message.source_text,
            caption=message.caption,
            caption_entities=message.caption_entities,
            photo=ctl.ShownPhoto(
                file_id=photo.file_id,
                file_unique_id=photo.file_unique_id,
                width=photo.width,
                height=photo.height,
                file_size=photo.size,
                url=photo.url,
            )
            if photo
            else None,
            document=msgspec.convert(msgspec.to_builtins(self._document(message.document)), ctl.ShownDocument)
            if message.document
            else None,
            invoice=ctl.ShownInvoice(
                title=spec.title,
                description=spec.description,
                currency=spec.currency,
                total_amount=spec.amount,
                payload=spec.payload,
                paid=spec.paid,
            )
            if spec
            else None,
            successful_payment=msgspec.to_builtins(message.successful_payment)
            if message.successful_payment
            else None,
            refunded_payment=msgspec.to_builtins(message.refunded_payment)
            if message.refunded_payment
            else None,
            reply_markup=message.reply_markup,
            buttons=_buttons(message.reply_markup),
            link_preview_options=message.link_preview_options,
            edited=bool(message.history),
            edits=list(message.history),
            deleted=message.deleted,
        )

    @staticmethod
    def _render(
        params: _Params,
        text_field: str,
        entities_field: str,
        *,
        limit: int,
        empty: str,
        too_long: str,
        required: bool,
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        source = params.string(text_field)
        if source is None:
            if required:
                raise _bad(empty)
            return None, None
        entities = params.json(entities_field)
        parse_mode = params.string("parse_mode")
        text = source
        if entities is not None:
            if not isinstance(entities, list):
                raise _bad(f"can't parse {entities_field} JSON object")
        elif parse_mode is not None:
            mode = parse_mode.lower()
            if mode == "html":
                try:
                    text, entities = parse_html(source)
                except HtmlParseError as exc:
                    raise _bad(f"can't parse entities: {exc}") from None
            elif mode not in ("markdown", "markdownv2"):
                raise _bad("unsupported parse_mode")
        if not text.strip():
            raise _bad(empty)
        if len(text) > limit:
            raise _bad(too_long)
        return text, entities or None

    @staticmethod
    def _markup(params: _Params, *, inline_only: bool) -> dict[str, Any] | None:
        markup = params.json("reply_markup")
        return None if markup is None else _check_markup(markup, inline_only=inline_only)

    @staticmethod
    def _link_preview(params: _Params) -> dict[str, Any] | None:
        options = params.json("link_preview_options")
        if options is None and params.flag("disable_web_page_preview"):
            return {"is_disabled": True}
        if options is not None and not isinstance(options, dict):
            raise _bad("can't parse link_preview_options JSON object")
        return options

    @staticmethod
    def _reply_to(params: _Params, chat: _Chat) -> int | None:
        reply = params.json("reply_parameters")
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        if message_id is None:
            message_id = params.integer("reply_to_message_id")
        if message_id is None:
            return None
        if message_id not in chat.messages:
            raise _bad("message to be replied not found")
        return int(message_id)

    def _editable(self, world: _World, params: _Params) -> tuple[_Chat, _StoredMessage]:
        if params.get("inline_message_id") is not None:
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._target_chat(world, params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad("message to edit not found")
        if not message.from_bot:
            raise _bad("message can't be edited")
        return chat, message

    def _send(self, world: _World, chat: _Chat, method: str, *, kind: str, **fields: Any) -> Message:
        """The bot's new message, within the flood limits: checked before, counted once stored."""
        self._throttle(world, method, chat.chat_id)
        message = self._add_message(world, chat, from_bot=True, kind=kind, **fields)
        self._count(world, method, chat.chat_id)
        return self._wire(world, message)

    def _edited(
        self, world: _World, chat: _Chat, message: _StoredMessage, method: str, **changes: Any
    ) -> Message:
        """The bot's message changed, within the flood limits like a new one."""
        self._throttle(world, method, chat.chat_id)
        self._edit(world, chat, message, **changes)
        self._count(world, method, chat.chat_id)
        return self._wire(world, message)
