"""The control API, the users' side: write, press, pay, block, and read what a chat shows."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from aiohttp import web

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.errors import _ControlError
from orbit.sandbox.telegram.formatting import _command_entities
from orbit.sandbox.telegram.params import _buttons, _chat_key, _json_response
from orbit.sandbox.telegram.state import _Callback, _Charge, _Chat, _PreCheckout, _StoredMessage, _World
from orbit.sandbox.telegram.wire import (
    CallbackQuery,
    ChatMemberUpdated,
    PreCheckoutQuery,
    SuccessfulPayment,
    User,
    _member,
)

_T = TypeVar("_T")


class _UserControls:
    """`/control/...` for what users do and see; the control API's error middleware and body helpers."""

    # --- control API ---------------------------------------------------------------------

    @web.middleware
    async def _control_errors(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except _ControlError as exc:
            return _json_response({"error": exc.message}, exc.status)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _json_response({"error": str(exc)}, 400)

    @staticmethod
    async def _body(request: web.Request, type_: type[_T]) -> _T:
        return msgspec.json.decode(await request.read() or b"{}", type=type_)

    @staticmethod
    def _query_number(request: web.Request, name: str, default: float) -> float:
        raw = request.query.get(name)
        try:
            return float(raw) if raw else default
        except ValueError:
            raise _ControlError(400, f"{name} must be a number") from None

    @staticmethod
    def _path_int(request: web.Request, name: str) -> int:
        try:
            return int(request.match_info[name])
        except ValueError:
            raise _ControlError(400, f"{name} must be an integer") from None

    def _remember_user(
        self, world: _World, user_id: int, given: ctl.SendTextIn | None, *, open_chat: bool = True
    ) -> User:
        known = world.users.get(user_id)
        profile = {
            "first_name": f"User {user_id}",
            "username": f"user{user_id}",
            "language_code": "en",
        }
        if known is not None:
            profile = {
                key: value for key, value in msgspec.to_builtins(known).items() if key not in ("id", "is_bot")
            }
        if given is not None:
            for key in ("first_name", "last_name", "username", "language_code", "is_premium"):
                value = getattr(given, key)
                if value is not None:
                    profile[key] = value
        user = User(id=user_id, is_bot=False, **profile)
        world.users[user_id] = user
        if open_chat:  # writing in a group opens no private chat: the bot cannot write first
            world.chats.setdefault(user_id, _Chat(user_id))
        return user

    def _set_blocked(self, world: _World, user_id: int, blocked: bool) -> ctl.UpdateRef:
        self._remember_user(world, user_id, None)
        if blocked == (user_id in world.blocked):
            return ctl.UpdateRef()
        if blocked:
            world.blocked.add(user_id)
        else:
            world.blocked.discard(user_id)
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        update_id, dropped = world.push(
            "my_chat_member",
            ChatMemberUpdated(
                chat=world.chat(user_id),
                from_=world.user(user_id),
                date=self._now(),
                old_chat_member=_member(old, world.bot_user()),
                new_chat_member=_member(new, world.bot_user()),
            ),
        )
        return ctl.UpdateRef(update_id=update_id, dropped=dropped)

    async def _c_reset(self, request: web.Request) -> web.Response:
        await self.reset()
        return _json_response({})

    async def _c_groups(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.GroupIn)
        if body.chat_id >= 0:
            raise _ControlError(400, "group and channel ids are negative")
        world.groups[body.chat_id] = body
        world.chats.setdefault(body.chat_id, _Chat(body.chat_id))
        return _json_response({})

    def _group_message(self, world: _World, body: ctl.SendTextIn) -> ctl.Sent:
        """A user writes in a group (a `message`), or a channel posts (a `channel_post`)."""
        assert body.chat_id is not None
        group = world.groups.get(body.chat_id)
        if group is None:
            raise _ControlError(404, f"no group {body.chat_id} (POST /control/groups first)")
        self._remember_user(world, body.user_id, body, open_chat=False)
        chat = world.chats[body.chat_id]
        if body.reply_to_message_id is not None and body.reply_to_message_id not in chat.messages:
            raise _ControlError(404, f"message {body.reply_to_message_id} not found")
        message = self._add_message(
            world,
            chat,
            from_bot=False,
            kind="text",
            text=body.text,
            entities=_command_entities(body.text),
            reply_to=body.reply_to_message_id,
            sender_id=body.user_id,
        )
        kind = "channel_post" if group.type == "channel" else "message"
        update_id, dropped = world.push(kind, self._wire(world, message))
        return ctl.Sent(
            update_id=update_id, message_id=message.message_id, chat_id=chat.chat_id, seq=message.seq,
            dropped=dropped,
        )  # fmt: skip

    async def _c_send_text(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.SendTextIn)
        if body.chat_id is not None and body.chat_id != body.user_id:
            return _json_response(self._group_message(world, body))
        if body.user_id in world.blocked:
            # Writing to a bot one has blocked means pressing "Restart" first.
            self._set_blocked(world, body.user_id, False)
        self._remember_user(world, body.user_id, body)
        chat = world.chats[body.user_id]
        if body.reply_to_message_id is not None and body.reply_to_message_id not in chat.messages:
            raise _ControlError(404, f"message {body.reply_to_message_id} not found")
        message = self._add_message(
            world,
            chat,
            from_bot=False,
            kind="text",
            text=body.text,
            entities=_command_entities(body.text),
            reply_to=body.reply_to_message_id,
        )
        update_id, dropped = world.push("message", self._wire(world, message))
        return _json_response(
            ctl.Sent(
                update_id=update_id,
                message_id=message.message_id,
                chat_id=chat.chat_id,
                seq=message.seq,
                dropped=dropped,
            )
        )

    def _bot_message(self, world: _World, user_id: int, message_id: int | None, want: str) -> _StoredMessage:
        chat = world.chats.get(user_id)
        if chat is None:
            raise _ControlError(404, f"user {user_id} has no chat with the bot")
        if message_id is None:
            candidates = [
                m
                for m in reversed(chat.messages.values())
                if m.from_bot and not m.deleted and (m.inline_markup if want == "keyboard" else m.invoice)
            ]
            if not candidates:
                raise _ControlError(404, f"no bot message with an {want} in chat {user_id}")
            return candidates[0]
        message = chat.messages.get(message_id)
        if message is None or not message.from_bot:
            raise _ControlError(404, f"no bot message {message_id} in chat {user_id}")
        if message.deleted:
            raise _ControlError(409, f"message {message_id} was deleted")
        return message

    def _press_target(self, world: _World, body: ctl.PressIn) -> _StoredMessage | None:
        chat_id = body.user_id if body.chat_id is None else body.chat_id
        if body.message_id is not None or not body.forge:
            return self._bot_message(world, chat_id, body.message_id, "keyboard")
        # Forged data with no message named: the newest bot message, or none at all.
        chat = world.chats.get(chat_id)
        messages = reversed(chat.messages.values()) if chat else iter(())
        return next((m for m in messages if m.from_bot and not m.deleted), None)

    async def _c_press(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.PressIn)
        if body.user_id not in world.users:
            raise _ControlError(404, f"user {body.user_id} has no chat with the bot")
        message = self._press_target(world, body)
        buttons = [b for row in _buttons(message.inline_markup if message else None) for b in row]
        data = body.data
        if body.button_text is not None:
            match = next((b for b in buttons if b.text == body.button_text), None)
            if match is None:
                raise _ControlError(404, f"no button {body.button_text!r} on the message")
            if match.callback_data is None:
                raise _ControlError(409, f"button {body.button_text!r} has no callback_data")
            data = match.callback_data
        elif data is None:
            raise _ControlError(400, "give data or button_text")
        elif not body.forge and all(b.callback_data != data for b in buttons):
            raise _ControlError(404, f"no button with callback_data {data!r} (forge=true?)")
        query = _Callback(
            id=str(secrets.randbits(62)),
            user_id=body.user_id,
            chat_id=message.chat_id if message else None,
            message_id=message.message_id if message else None,
            data=data,
            created=self._mono(),
        )
        world.callbacks[query.id] = query
        update_id, dropped = world.push(
            "callback_query",
            CallbackQuery(
                id=query.id,
                from_=world.user(body.user_id),
                chat_instance=str((world.bot_id or 0) * 1_000_003 + (body.chat_id or body.user_id)),
                message=self._wire(world, message) if message else None,
                data=data,
            ),
        )
        return _json_response(
            ctl.Pressed(
                update_id=update_id,
                callback_query_id=query.id,
                message_id=query.message_id,
                data=data,
                dropped=dropped,
            )
        )

    async def _c_pay(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.PayIn)
        if body.link is not None:
            spec = world.invoice_links.get(body.link.rsplit("$", 1)[-1])
            if spec is None:
                raise _ControlError(404, f"unknown invoice link {body.link}")
            self._remember_user(world, body.user_id, None)
        else:
            spec = self._bot_message(world, body.user_id, body.message_id, "invoice").invoice
            if spec is None:
                raise _ControlError(409, f"message {body.message_id} is not an invoice")
            if spec.paid:
                raise _ControlError(409, "this invoice is already paid")
        query = _PreCheckout(
            id=str(secrets.randbits(62)),
            user_id=body.user_id,
            invoice=spec,
            deadline=self._mono() + body.timeout,
        )
        world.pre_checkouts[query.id] = query
        _, dropped = world.push(
            "pre_checkout_query",
            PreCheckoutQuery(
                id=query.id,
                from_=world.user(body.user_id),
                currency=spec.currency,
                total_amount=spec.amount,
                invoice_payload=spec.payload,
            ),
        )
        answered = not dropped and await world.changes.wait_until(lambda: query.answered, body.timeout)
        if not answered:
            query.expired = True
            outcome = ctl.PaymentOutcome(status="timeout", pre_checkout_query_id=query.id, dropped=dropped)
            return _json_response(outcome)
        if not query.ok:
            outcome = ctl.PaymentOutcome(
                status="rejected", pre_checkout_query_id=query.id, error_message=query.error_message
            )
            return _json_response(outcome)
        return _json_response(self._paid(world, query, twice=body.twice))

    def _paid(self, world: _World, query: _PreCheckout, *, twice: bool) -> ctl.PaymentOutcome:
        spec = query.invoice
        charge = _Charge(
            charge_id="stx" + secrets.token_urlsafe(32),
            user_id=query.user_id,
            amount=spec.amount,
            payload=spec.payload,
            date=self._now(),
        )
        world.charges[charge.charge_id] = charge
        spec.paid = spec.paid or spec.subscription_period is None
        recurring = spec.subscription_period is not None
        payment = SuccessfulPayment(
            currency=spec.currency,
            total_amount=spec.amount,
            invoice_payload=spec.payload,
            telegram_payment_charge_id=charge.charge_id,
            provider_payment_charge_id="",
            subscription_expiration_date=charge.date + (spec.subscription_period or 0) if recurring else None,
            is_recurring=True if recurring else None,
            is_first_recurring=True if recurring else None,
        )
        chat = world.chats[query.user_id]
        message = self._add_message(
            world, chat, from_bot=False, kind="successful_payment", successful_payment=payment
        )
        wire = self._wire(world, message)
        update_ids = [world.push("message", wire)[0] for _ in range(2 if twice else 1)]
        return ctl.PaymentOutcome(
            status="paid",
            pre_checkout_query_id=query.id,
            telegram_payment_charge_id=charge.charge_id,
            message_id=message.message_id,
            update_ids=update_ids,
        )

    async def _c_block(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.UserIn)
        return _json_response(self._set_blocked(world, body.user_id, True))

    async def _c_unblock(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.UserIn)
        return _json_response(self._set_blocked(world, body.user_id, False))

    async def _c_members(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.MemberIn)
        try:
            key = _chat_key(body.chat_id)
        except ValueError:
            raise _ControlError(400, "chat_id must be an integer or @username") from None
        self._memberships[(key, body.user_id)] = body.status
        return _json_response({})

    async def _c_users(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        users = [
            ctl.KnownUser(
                id=user.id,
                first_name=user.first_name,
                last_name=user.last_name,
                username=user.username,
                language_code=user.language_code,
            )
            for user in world.users.values()
        ]
        return _json_response(users)

    async def _c_messages(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        chat = world.chats.get(self._path_int(request, "chat_id"))
        include_user = request.query.get("include_user") in ("1", "true")
        messages = [
            self._shown(message)
            for message in (chat.messages.values() if chat else ())
            if include_user or message.from_bot
        ]
        return _json_response(ctl.MessagesOut(messages=messages, last_seq=world.seq))

    async def _c_events(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        chat_id = self._path_int(request, "chat_id")
        after = int(self._query_number(request, "after", 0))
        more_than = request.query.get("more_than")
        skip = int(more_than) if more_than else 0
        include_user = request.query.get("include_user") in ("1", "true")
        timeout = min(self._query_number(request, "timeout", 5.0), 300.0)

        def selected() -> list[ctl.ChatEvent]:
            chat = world.chats.get(chat_id)
            if chat is None:
                return []
            events = [e for e in chat.events if include_user or e.kind != "received"]
            return [e for e in events[skip:] if e.seq > after]

        await world.changes.wait_until(lambda: bool(selected()), timeout)
        return _json_response(ctl.EventsOut(events=selected(), last_seq=world.seq))

    async def _c_callback(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        query = world.callbacks.get(request.match_info["callback_id"])
        if query is None:
            raise _ControlError(404, "unknown callback query")
        timeout = min(self._query_number(request, "timeout", 0.0), 300.0)
        await world.changes.wait_until(lambda: query.answered, timeout)
        return _json_response(
            ctl.CallbackAnswer(
                id=query.id,
                user_id=query.user_id,
                chat_id=query.chat_id,
                message_id=query.message_id,
                data=query.data,
                answered=query.answered,
                text=query.text,
                show_alert=query.show_alert,
                url=query.url,
                cache_time=query.cache_time,
            )
        )
