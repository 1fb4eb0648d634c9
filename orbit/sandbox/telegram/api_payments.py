"""Bot API methods for Telegram Stars: invoices, pre-checkout, refunds, transactions."""

from __future__ import annotations

import secrets
from typing import Any

from orbit.sandbox.telegram.constants import QUERY_TOO_OLD, STARS_SUBSCRIPTION_PERIOD
from orbit.sandbox.telegram.errors import _bad
from orbit.sandbox.telegram.params import _Params
from orbit.sandbox.telegram.state import _Charge, _Chat, _InvoiceSpec, _World
from orbit.sandbox.telegram.wire import Message, RefundedPayment


class _PaymentMethods:
    """sendInvoice, createInvoiceLink, answerPreCheckoutQuery, refundStarPayment, getStarTransactions."""

    def _invoice_spec(self, params: _Params, *, link: bool) -> _InvoiceSpec:
        title = params.string("title", required=True) or ""
        description = params.string("description", required=True) or ""
        payload = params.string("payload", required=True) or ""
        currency = (params.string("currency", required=True) or "").upper()
        if len(title) > 32:
            raise _bad("title is too long")
        if len(description) > 255:
            raise _bad("description is too long")
        if not 1 <= len(payload.encode()) <= 128:
            raise _bad("INVOICE_PAYLOAD_INVALID")
        prices = params.json("prices")
        if (
            not isinstance(prices, list)
            or not prices
            or not all(
                isinstance(price, dict)
                and isinstance(price.get("label"), str)
                and isinstance(price.get("amount"), int)
                for price in prices
            )
        ):
            raise _bad("can't parse prices JSON object")
        amount = sum(price["amount"] for price in prices)
        period = params.integer("subscription_period") if link else None
        if currency == "XTR":
            tips = params.get("max_tip_amount") or params.get("suggested_tip_amounts")
            if len(prices) != 1 or amount < 1 or tips or params.string("provider_token"):
                raise _bad("STARS_INVOICE_INVALID")
            if period is not None and (period != STARS_SUBSCRIPTION_PERIOD or amount > 10000):
                raise _bad("SUBSCRIPTION_PERIOD_INVALID")
        else:
            if not params.string("provider_token"):
                raise _bad("PAYMENT_PROVIDER_INVALID")
            if amount < 1:
                raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
            if period is not None:
                raise _bad("SUBSCRIPTION_PERIOD_INVALID")
        return _InvoiceSpec(
            title=title,
            description=description,
            payload=payload,
            currency=currency,
            amount=amount,
            start_parameter=params.string("start_parameter") or "",
            subscription_period=period,
        )

    async def _send_invoice(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        spec = self._invoice_spec(params, link=False)
        markup = self._markup(params, inline_only=True)
        return self._send(world, chat, "sendInvoice", kind="invoice", invoice=spec, reply_markup=markup)

    async def _create_invoice_link(self, world: _World, params: _Params) -> str:
        spec = self._invoice_spec(params, link=True)
        slug = secrets.token_urlsafe(16)
        world.invoice_links[slug] = spec
        return f"https://t.me/${slug}"

    async def _answer_pre_checkout_query(self, world: _World, params: _Params) -> bool:
        query = world.pre_checkouts.get(params.string("pre_checkout_query_id", required=True) or "")
        if query is None or query.answered or query.expired or self._mono() > query.deadline:
            raise _bad(QUERY_TOO_OLD)
        ok = params.flag("ok")
        error_message = params.string("error_message")
        if not ok and not error_message:
            raise _bad("error_message is empty")
        query.answered, query.ok, query.error_message = True, ok, error_message
        world.changes.notify()
        return True

    async def _refund_star_payment(self, world: _World, params: _Params) -> bool:
        user_id = params.integer("user_id", required=True)
        charge = world.charges.get(params.string("telegram_payment_charge_id", required=True) or "")
        if charge is None or charge.user_id != user_id:
            raise _bad("CHARGE_ID_INVALID")
        if charge.refunded:
            raise _bad("CHARGE_ALREADY_REFUNDED")
        self._refund(world, charge)
        return True

    def _refund(self, world: _World, charge: _Charge) -> None:
        """The Stars go back; the payer's chat gets the `refunded_payment` service message."""
        charge.refunded = True
        charge.refund_date = self._now()
        chat = world.chats.setdefault(charge.user_id, _Chat(charge.user_id))
        message = self._add_message(
            world,
            chat,
            from_bot=False,
            kind="refunded_payment",
            refunded_payment=RefundedPayment(
                currency="XTR",
                total_amount=charge.amount,
                invoice_payload=charge.payload,
                telegram_payment_charge_id=charge.charge_id,
                provider_payment_charge_id="",
            ),
        )
        world.push("message", self._wire(world, message))

    async def _get_star_transactions(self, world: _World, params: _Params) -> dict[str, Any]:
        offset = max(params.integer("offset") or 0, 0)
        limit = min(max(params.integer("limit") or 100, 1), 100)
        rows: list[tuple[int, dict[str, Any]]] = []
        for charge in world.charges.values():
            partner = {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": world.user(charge.user_id),
                "invoice_payload": charge.payload,
            }
            payment = {"id": charge.charge_id, "amount": charge.amount, "date": charge.date}
            rows.append((charge.date, {**payment, "source": partner}))
            if charge.refunded:
                refund = {**payment, "date": charge.refund_date, "receiver": partner}
                rows.append((charge.refund_date, refund))
        rows.sort(key=lambda row: row[0])
        return {"transactions": [tx for _, tx in rows[offset : offset + limit]]}
