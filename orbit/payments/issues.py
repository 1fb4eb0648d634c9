"""What reconciliation cannot fix by itself: recorded once per fact, logged, and sent
to the admins through the outbox (`orbit reconcile --issues` lists the open ones)."""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg
import msgspec
from markupsafe import Markup

from orbit import outbox
from orbit.i18n import Translator
from orbit.payments import queries
from orbit.settings import Settings
from orbit.text import clean_text

log = logging.getLogger(__name__)


class Issue(msgspec.Struct, frozen=True):
    id: int
    source: str  # stars, cryptobot, ton
    subject: str  # charge id, invoice id
    kind: str
    user_id: int | None
    amount_kop: int | None
    detail: str
    created_at: datetime


async def report_issue(
    conn: asyncpg.Connection,
    translator: Translator,
    settings: Settings,
    *,
    source: str,
    subject: str,
    kind: str,
    what_key: str,
    user_id: int | None = None,
    amount_kop: int | None = None,
    **what: str,
) -> bool:
    """Record the issue and tell every admin, once per (source, subject, kind).
    `what_key` (reconcile.ftl) with `what` says what happened. True when it is new."""
    # Outside text (payloads, Telegram's error texts) is made storable first.
    subject = clean_text(subject, 256)
    what = {name: clean_text(value, 200) for name, value in what.items()}
    detail = translator("en", what_key, **what)
    issue_id = await queries.record_issue(conn, source, subject, kind, user_id, amount_kop, detail)
    if issue_id is None:
        return False
    # INFO: `orbit reconcile --json` owns stdout; the janitor logs its report at WARNING.
    log.info("reconcile issue %d: %s %s %s: %s", issue_id, source, kind, subject, detail)
    for admin_id in settings.admin_ids:
        language = await queries.user_language(conn, admin_id)
        text = translator(
            language,
            "reconcile-issue",
            source=source,
            subject=subject,
            # Rendered (values escaped by the core): kept as it is inside the outer text.
            what=Markup(translator(language, what_key, **what)),
        )
        dedup_key = f"reconcile-issue:{issue_id}:{admin_id}"
        await outbox.enqueue(conn, admin_id, "reconcile_issue", text, dedup_key=dedup_key)
    return True


async def resolve_issue(conn: asyncpg.Connection, source: str, subject: str, kind: str) -> None:
    await queries.resolve_issue(conn, source, subject, kind)


async def open_issues(pool: asyncpg.Pool, limit: int = 100) -> list[Issue]:
    return [Issue(**dict(r)) for r in await queries.open_issues(pool, limit)]
