"""The control API, the tester's knobs: recorded calls, rate limits, injected updates,
charges, tokens, outages, the clock."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from aiohttp import web

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.errors import _ControlError
from orbit.sandbox.telegram.params import _json_response
from orbit.sandbox.telegram.state import _Charge, _Chat
from orbit.sandbox.telegram.wire import SuccessfulPayment, User


class _Knobs:
    """`/control/...` that change how the emulator behaves rather than what a user does."""

    async def _c_calls(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        method = request.query.get("method", "").lower()
        calls = [call for call in world.calls if not method or call.method.lower() == method]
        return _json_response(calls)

    async def _c_rate_stats(self, request: web.Request) -> web.Response:
        rate = self._control_world(request).rate
        return _json_response(
            ctl.RateStats(
                limits=self.rate_limits,
                accepted_total=rate.accepted_total,
                per_second=[
                    ctl.SecondCount(second=second, accepted=count)
                    for second, count in sorted(rate.per_second.items())
                ],
                max_per_chat_window=rate.max_chat_window,
                max_global_window=rate.max_global_window,
                too_many_requests=rate.given,
                early_retries=rate.early_retries,
            )
        )

    async def _c_set_rate(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.RateLimitsIn)
        changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
        if any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in changes.values()):
            raise _ControlError(400, "limits must be positive")
        self.rate_limits = msgspec.structs.replace(self.rate_limits, **changes)
        return _json_response(self.rate_limits)

    async def _c_flood(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.FloodIn)
        if body.seconds < 1:
            raise _ControlError(400, "seconds must be positive")
        world.rate.floods[body.chat_id] = self._mono() + body.seconds
        world.rate.flood_told.discard(body.chat_id)
        return _json_response({"ok": True})

    async def _c_inject(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        update = await self._body(request, dict[str, Any])
        kinds = [key for key in update if key != "update_id"]
        if len(kinds) != 1:
            raise _ControlError(400, "an update carries exactly one field besides update_id")
        payload = update[kinds[0]]
        chat = payload.get("chat") if isinstance(payload, dict) else None
        sender = payload.get("from") if isinstance(payload, dict) else None
        if isinstance(chat, dict) and chat.get("type") == "private" and isinstance(sender, dict):
            try:
                user = msgspec.convert(sender, User)
            except msgspec.ValidationError:
                user = None
            if user is not None:
                world.users.setdefault(user.id, user)
                chat_state = world.chats.setdefault(user.id, _Chat(user.id))
                message_id = payload.get("message_id")
                if isinstance(message_id, int):
                    chat_state.next_message_id = max(chat_state.next_message_id, message_id + 1)
        update_id, dropped = world.push(kinds[0], payload)
        return _json_response(ctl.UpdateRef(update_id=update_id, dropped=dropped))

    async def _c_charges(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        return _json_response(
            [
                ctl.StarCharge(
                    telegram_payment_charge_id=charge.charge_id,
                    user_id=charge.user_id,
                    total_amount=charge.amount,
                    invoice_payload=charge.payload,
                    date=charge.date,
                    refunded=charge.refunded,
                )
                for charge in world.charges.values()
            ]
        )

    @staticmethod
    def _star_charge(charge: _Charge) -> ctl.StarCharge:
        return ctl.StarCharge(
            telegram_payment_charge_id=charge.charge_id,
            user_id=charge.user_id,
            total_amount=charge.amount,
            invoice_payload=charge.payload,
            date=charge.date,
            refunded=charge.refunded,
        )

    async def _c_charge(self, request: web.Request) -> web.Response:
        """A charge as Telegram records it; with `deliver` the payer's chat also gets the
        `successful_payment` (and the bot its update), else that update was lost."""
        world = self._control_world(request)
        body = await self._body(request, ctl.ChargeIn)
        if body.total_amount < 1:
            raise _ControlError(400, "total_amount must be positive")
        self._remember_user(world, body.user_id, None)
        charge = _Charge(
            charge_id="stx" + secrets.token_urlsafe(32),
            user_id=body.user_id,
            amount=body.total_amount,
            payload=body.invoice_payload,
            date=self._now(),
        )
        world.charges[charge.charge_id] = charge
        if body.deliver:
            chat = world.chats.setdefault(body.user_id, _Chat(body.user_id))
            paid = SuccessfulPayment(
                currency="XTR",
                total_amount=charge.amount,
                invoice_payload=charge.payload,
                telegram_payment_charge_id=charge.charge_id,
                provider_payment_charge_id="",
            )
            message = self._add_message(
                world, chat, from_bot=False, kind="successful_payment", successful_payment=paid
            )
            world.push("message", self._wire(world, message))
        return _json_response(self._star_charge(charge))

    async def _c_refund_charge(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        charge = world.charges.get(request.match_info["charge_id"])
        if charge is None:
            raise _ControlError(404, "unknown charge")
        if charge.refunded:
            raise _ControlError(409, "CHARGE_ALREADY_REFUNDED")
        self._refund(world, charge)
        return _json_response(self._star_charge(charge))

    async def _c_tokens(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.TokenIn)
        if body.valid:
            self._invalid_tokens.discard(body.token)
        else:
            self._invalid_tokens.add(body.token)
        return _json_response({})

    async def _c_bad_gateway(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.BadGatewayIn)
        if body.on:
            self._bad_gateway.add(body.method.lower())
        else:
            self._bad_gateway.discard(body.method.lower())
        return _json_response({"methods": sorted(self._bad_gateway)})

    async def _c_clock(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.ClockIn)
        if body.advance < 0:
            raise _ControlError(400, "the clock only goes forward")
        return _json_response({"offset": self.advance_clock(body.advance)})

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock (message dates, query deadlines) forward; the new offset."""
        if not seconds >= 0:
            raise ValueError("the clock only goes forward")
        self._clock_offset += seconds
        return self._clock_offset

    async def _c_hold(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.HoldIn)
        if body.seconds < 0 or (body.times is not None and body.times < 1):
            raise _ControlError(400, "seconds must be >= 0 and times >= 1")
        self._hold = body if body.seconds > 0 else None
        return _json_response({"hold": self._hold})

    async def _c_file(self, request: web.Request) -> web.Response:
        stored = self._control_world(request).files.get(request.match_info["file_id"])
        if stored is None or stored.data is None:
            raise _ControlError(404, "unknown file or a file sent by URL")
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")
