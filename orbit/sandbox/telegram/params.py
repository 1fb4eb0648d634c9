"""Reading a Bot API call: its parameters (query, JSON, form, multipart), markups, webhook replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.constants import _BUTTON_ACTIONS, _BUTTON_URL_RE, MAX_CALLBACK_DATA
from orbit.sandbox.telegram.errors import _bad
from orbit.sandbox.telegram.state import _Upload, _World


class _Params:
    """Method parameters as they came: strings from a form, or JSON values."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str) -> Any:
        value = self.raw.get(name)
        return None if value is None or value == "" else value

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise _bad(f"{name} is empty")
            return None
        if isinstance(value, _Upload):
            raise _bad(f"{name} must be a String")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return msgspec.json.encode(value).decode()
        return str(value)

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.get(name)
        if value is None:
            if required:
                raise _bad(f"{name} is empty")
            return None
        if isinstance(value, int):
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise _bad(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if isinstance(value, bool):
            return value
        return value is not None and str(value).lower() in ("true", "1")

    def json(self, name: str) -> Any:
        value = self.get(name)
        if isinstance(value, _Upload):
            raise _bad(f"can't parse {name} JSON object")
        if isinstance(value, str):
            try:
                return msgspec.json.decode(value)
            except msgspec.DecodeError:
                raise _bad(f"can't parse {name} JSON object") from None
        return value

    def file(self, name: str) -> _Upload | str | None:
        value = self.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = self.raw.get(value.removeprefix("attach://"))
            if not isinstance(attached, _Upload):
                raise _bad(f"file {value} not found in the request")
            return attached
        if value is None or isinstance(value, _Upload):
            return value
        return str(value)

    def chat_id(self) -> int:
        value = self.get("chat_id")
        if value is None:
            raise _bad("chat_id is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None

    def describe(self) -> dict[str, Any]:
        return {
            key: (
                {"filename": v.filename, "content_type": v.content_type, "size": len(v.data)}
                if isinstance(v, _Upload)
                else v
            )
            for key, v in self.raw.items()
        }


_Method = Callable[["_World", _Params], Awaitable[Any]]


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.read()
        if body:
            try:
                decoded = msgspec.json.decode(body)
            except msgspec.DecodeError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise _bad("can't parse JSON object")
            params.update(decoded)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                value.file.close()
                params[key] = _Upload(value.filename, value.content_type, data)
            else:
                params[key] = value
    return params


async def _read_webhook_reply(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """A method the webhook answered with ("reply into webhook"), if any."""
    if resp.content_type == "application/json":
        body = await resp.read()
        try:
            decoded = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            return None
        return decoded if isinstance(decoded, dict) and "method" in decoded else None
    if resp.content_type != "multipart/form-data":
        return None
    params: dict[str, Any] = {}
    reader = aiohttp.MultipartReader(resp.headers, resp.content)
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        if part.filename:
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
            params[part.name] = _Upload(part.filename, content_type, await part.read())
        else:
            params[part.name] = await part.text()
    return params


def _check_markup(markup: Any, *, inline_only: bool) -> dict[str, Any]:
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('can\'t parse inline keyboard: field "inline_keyboard" must be an Array')
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return markup
    if inline_only:
        raise _bad("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('can\'t parse reply keyboard: field "keyboard" must be an Array')
        for row in rows:
            for button in row:
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise _bad("can't parse keyboard button: Text must be a String")
        return markup
    if markup.get("remove_keyboard") or markup.get("force_reply"):
        return markup
    raise _bad("can't parse reply keyboard markup JSON object")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad("can't parse inline keyboard button: Text must be a String")
    if not any(action in button for action in _BUTTON_ACTIONS):
        raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None and (not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA):
        raise _bad("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and (not isinstance(url, str) or not _BUTTON_URL_RE.fullmatch(url)):
        raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _buttons(markup: dict[str, Any] | None) -> list[list[ctl.Button]]:
    if not markup:
        return []
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    shown: list[list[ctl.Button]] = []
    for row in rows:
        shown_row = []
        for button in row:
            if isinstance(button, str):
                shown_row.append(ctl.Button(text=button))
            else:
                shown_row.append(
                    ctl.Button(
                        text=button["text"],
                        callback_data=button.get("callback_data"),
                        url=button.get("url"),
                    )
                )
        shown.append(shown_row)
    return shown


def _chat_key(chat: int | str) -> int | str:
    if isinstance(chat, int):
        return chat
    if chat.startswith("@"):
        return chat.lower()
    return int(chat)
