"""Bot API methods that send, edit and delete messages, files and callback answers."""

from __future__ import annotations

import mimetypes
import secrets
from typing import Any

from orbit.sandbox.telegram.constants import (
    DELETE_DEADLINE,
    MAX_CALLBACK_TEXT,
    MAX_CAPTION,
    MAX_GET_FILE,
    MAX_TEXT,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    WRONG_FILE,
)
from orbit.sandbox.telegram.errors import BotApiError, _bad
from orbit.sandbox.telegram.images import _scaled, image_size
from orbit.sandbox.telegram.params import _Params
from orbit.sandbox.telegram.state import _Chat, _StoredFile, _Upload, _World
from orbit.sandbox.telegram.wire import Message, PhotoSize


class _MessageMethods:
    """send*, edit*, delete*, getFile, sendChatAction, answerCallbackQuery."""

    def _text(self, params: _Params) -> tuple[str | None, list[dict[str, Any]] | None]:
        return self._render(
            params,
            "text",
            "entities",
            limit=MAX_TEXT,
            empty="message text is empty",
            too_long="message is too long",
            required=True,
        )

    async def _send_message(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        text, entities = self._text(params)
        markup = self._markup(params, inline_only=False)
        reply_to = self._reply_to(params, chat)
        return self._send(
            world,
            chat,
            "sendMessage",
            kind="text",
            text=text,
            entities=entities,
            source_text=params.string("text"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
            link_preview_options=self._link_preview(params),
            reply_to=reply_to,
        )

    def _caption(self, params: _Params) -> tuple[str | None, list[dict[str, Any]] | None]:
        return self._render(
            params,
            "caption",
            "caption_entities",
            limit=MAX_CAPTION,
            empty="message caption is empty",
            too_long="message caption is too long",
            required=False,
        )

    async def _send_photo(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        photo = params.file("photo")
        if photo is None:
            raise _bad("there is no photo in the request")
        caption, caption_entities = self._caption(params)
        markup = self._markup(params, inline_only=False)
        stored = self._photo(world, photo)
        return self._send(
            world,
            chat,
            "sendPhoto",
            kind="photo",
            photo=stored,
            caption=caption,
            caption_entities=caption_entities,
            source_text=params.string("caption"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
        )

    def _photo(self, world: _World, photo: _Upload | str) -> _StoredFile:
        if isinstance(photo, str):
            if photo.startswith(("http://", "https://")):
                stored = self._store_file(world, "photo", url=photo)
                stored.sizes = [
                    PhotoSize(
                        file_id=stored.file_id,
                        file_unique_id=stored.file_unique_id,
                        width=0,
                        height=0,
                    )
                ]
                return stored
            known = world.files.get(photo)
            if known is None or known.kind != "photo":
                raise _bad(WRONG_FILE)
            return known
        if not photo.data:
            raise _bad("file must be non-empty")
        size = image_size(photo.data)
        if size is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        width, height = size
        if min(size) == 0 or width + height > 10000 or max(size) > 20 * min(size):
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        stored = self._store_file(
            world,
            "photo",
            data=photo.data,
            file_name=photo.filename,
            mime_type=mimetypes.guess_type(photo.filename)[0] or photo.content_type,
            width=width,
            height=height,
        )
        sides = [90] if max(size) > 90 else []
        for side in [*sides, 1280]:
            w, h = _scaled(width, height, side)
            is_main = side == 1280
            file_id = stored.file_id if is_main else self._file_id("AgACAgIAAxk")
            stored.sizes.append(
                PhotoSize(
                    file_id=file_id,
                    file_unique_id=stored.file_unique_id if is_main else self._file_id("AQAD")[:20],
                    width=w,
                    height=h,
                    file_size=len(photo.data)
                    if is_main
                    else max(1, len(photo.data) * w * h // (width * height)),
                )
            )
            world.files[file_id] = stored
        return stored

    @staticmethod
    def _file_id(prefix: str) -> str:
        return prefix + secrets.token_urlsafe(24)

    def _store_file(self, world: _World, kind: str, **fields: Any) -> _StoredFile:
        file_id = self._file_id("AgACAgIAAxk" if kind == "photo" else "BQACAgIAAxk")
        extension = mimetypes.guess_extension(fields.get("mime_type") or "") or ""
        stored = _StoredFile(
            file_id=file_id,
            file_unique_id=self._file_id("AQAD")[:20],
            kind=kind,
            path=f"{kind}s/file_{len(world.file_paths)}{extension}",
            **fields,
        )
        world.files[file_id] = stored
        world.file_paths[stored.path] = stored
        return stored

    async def _send_document(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        document = params.file("document")
        if document is None:
            raise _bad("there is no document in the request")
        caption, caption_entities = self._caption(params)
        markup = self._markup(params, inline_only=False)
        if isinstance(document, str):
            stored = world.files.get(document)
            if stored is None or stored.kind != "document":
                raise _bad(WRONG_FILE)
        elif not document.data:
            raise _bad("file must be non-empty")
        else:
            stored = self._store_file(
                world,
                "document",
                data=document.data,
                file_name=document.filename,
                mime_type=mimetypes.guess_type(document.filename)[0] or document.content_type,
            )
        return self._send(
            world,
            chat,
            "sendDocument",
            kind="document",
            document=stored,
            caption=caption,
            caption_entities=caption_entities,
            source_text=params.string("caption"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
        )

    async def _get_file(self, world: _World, params: _Params) -> dict[str, Any]:
        stored = world.files.get(params.string("file_id", required=True) or "")
        if stored is None or stored.data is None:
            raise _bad("wrong file_id or the file is temporarily unavailable")
        if len(stored.data) > MAX_GET_FILE:
            raise _bad("file is too big")
        return {
            "file_id": params.string("file_id"),
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    async def _send_chat_action(self, world: _World, params: _Params) -> bool:
        self._target_chat(world, params)
        params.string("action", required=True)
        return True

    async def _edit_message_text(self, world: _World, params: _Params) -> Message:
        chat, message = self._editable(world, params)
        if message.kind != "text":
            raise _bad("there is no text in the message to edit")
        text, entities = self._text(params)
        markup = self._markup(params, inline_only=True)
        if (text, entities, markup) == (message.text, message.entities, message.inline_markup):
            raise _bad(NOT_MODIFIED)
        changes: dict[str, Any] = {
            "text": text,
            "entities": entities,
            "source_text": params.string("text"),
            "parse_mode": params.string("parse_mode"),
            "link_preview_options": self._link_preview(params),
        }
        if markup is not None or message.inline_markup is not None:
            changes["reply_markup"] = markup
        return self._edited(world, chat, message, "editMessageText", **changes)

    async def _edit_message_caption(self, world: _World, params: _Params) -> Message:
        chat, message = self._editable(world, params)
        if message.kind not in ("photo", "document"):
            raise _bad("there is no caption in the message to edit")
        caption, caption_entities = self._caption(params)
        markup = self._markup(params, inline_only=True)
        current = (message.caption, message.caption_entities, message.inline_markup)
        if (caption, caption_entities, markup) == current:
            raise _bad(NOT_MODIFIED)
        return self._edited(
            world,
            chat,
            message,
            "editMessageCaption",
            caption=caption,
            caption_entities=caption_entities,
            source_text=params.string("caption"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
        )

    async def _edit_message_reply_markup(self, world: _World, params: _Params) -> Message:
        chat, message = self._editable(world, params)
        markup = self._markup(params, inline_only=True)
        if markup == message.inline_markup:
            raise _bad(NOT_MODIFIED)
        return self._edited(world, chat, message, "editMessageReplyMarkup", reply_markup=markup)

    def _delete(self, world: _World, chat: _Chat, message_id: int) -> None:
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad("message to delete not found")
        if self._now() - message.date > DELETE_DEADLINE:
            raise _bad("message can't be deleted")
        message.deleted = True
        self._event(world, chat, message, "deleted")

    async def _delete_message(self, world: _World, params: _Params) -> bool:
        chat_id = params.chat_id()
        chat = world.chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        self._delete(world, chat, params.integer("message_id", required=True) or 0)
        return True

    async def _delete_messages(self, world: _World, params: _Params) -> bool:
        chat = world.chats.get(params.chat_id())
        if chat is None:
            raise _bad("chat not found")
        ids = params.json("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must be a non-empty array of at most 100 identifiers")
        for message_id in ids:
            try:
                self._delete(world, chat, int(message_id))
            except BotApiError:
                continue
        return True

    async def _answer_callback_query(self, world: _World, params: _Params) -> bool:
        query = world.callbacks.get(params.string("callback_query_id", required=True) or "")
        if query is None or query.answered or self._mono() - query.created > self._callback_deadline:
            raise _bad(QUERY_TOO_OLD)
        text = params.string("text")
        if text is not None and len(text) > MAX_CALLBACK_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        query.text = text
        query.show_alert = params.flag("show_alert")
        query.url = params.string("url")
        query.cache_time = params.integer("cache_time")
        world.changes.notify()
        return True
