"""Crypto Pay reconciliation: `getInvoices` against our payments.

Asked about: every CryptoBot payment of the last `LOOKBACK_DAYS` not yet
credited that has an invoice id, and the app's latest paid invoices (which
also finds an invoice whose id we never recorded: its payload is our payment
id). A paid one is credited through `confirm_invoice`, idempotent by invoice
id, so a webhook that was lost, or arrives after this, credits once. A paid
invoice that names no payment of ours is reported.
"""

from __future__ import annotations

import aiohttp
import asyncpg
from redis.asyncio import Redis

from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import cryptobot, issues, queries
from orbit.payments.reconcile_report import Report
from orbit.settings import Settings
from orbit.text import clean_text

LOOKBACK_DAYS = 7  # an invoice lives PAYMENT_TIMEOUT_MINUTES; a week covers any outage
BATCH = 100  # invoice ids per getInvoices call
RECENT_PAID = 100


async def reconcile_cryptobot(
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    translator: Translator,
    settings: Settings,
) -> Report:
    report = Report(source=cryptobot.METHOD)
    client = cryptobot.client_for(http, settings)
    ids = [int(i) for i in await queries.uncredited_invoice_ids(pool, cryptobot.METHOD, LOOKBACK_DAYS)]
    invoices: dict[int, cryptobot.Invoice] = {}
    for start in range(0, len(ids), BATCH):
        for invoice in await client.get_invoices(ids[start : start + BATCH]):
            invoices[invoice.invoice_id] = invoice
    for invoice in await client.recent_invoices("paid", RECENT_PAID):
        invoices.setdefault(invoice.invoice_id, invoice)
    report.checked = len(invoices)
    paid = [i for i in invoices.values() if i.status == "paid"]
    paid_ids = [str(i.invoice_id) for i in paid]
    credited = await queries.known_external_ids(pool, cryptobot.METHOD, paid_ids)
    reported = await queries.reported_subjects(pool, cryptobot.METHOD, "invoice_unmatched", paid_ids)
    for invoice in paid:
        invoice_id = str(invoice.invoice_id)
        if credited.get(invoice_id) in ("confirmed", "refunded") or invoice_id in reported:
            continue
        confirmation = await cryptobot.confirm_invoice(pool, redis, translator, settings, invoice)
        if confirmation is None:
            await _report_unmatched(pool, translator, settings, invoice, report)
        elif not confirmation.replayed:
            report.credited += 1
            report.fixed.append(
                f"invoice {invoice.invoice_id} was paid without a webhook: payment"
                f" {confirmation.payment.id} credited {format_rub(confirmation.credited_kop)} RUB"
            )
    return report


async def _report_unmatched(
    pool: asyncpg.Pool,
    translator: Translator,
    settings: Settings,
    invoice: cryptobot.Invoice,
    report: Report,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        new = await issues.report_issue(
            conn,
            translator,
            settings,
            source=cryptobot.METHOD,
            subject=str(invoice.invoice_id),
            kind="invoice_unmatched",
            what_key="reconcile-what-invoice-unmatched",
            amount=f"{clean_text(invoice.amount, 40)} {clean_text(invoice.fiat or invoice.asset, 10)}",
            payload=clean_text(invoice.payload, 64),
        )
    if new:
        report.unresolved += 1
