"""The database schema as SQLAlchemy Core metadata.

Used only by Alembic (migrations are generated from and checked against it);
the running processes talk to Postgres with raw asyncpg SQL.
Money columns are integer kopecks (`*_kop`).
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# The revision the code expects; processes refuse to start on anything else.
# tests/test_migrations.py checks it equals Alembic's head.
SCHEMA_HEAD = "bcast_jobs"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NOW = text("now()")


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW)


users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # Telegram user id
    Column("username", Text),
    Column("first_name", Text),
    Column("language", Text, nullable=False, server_default="en"),
    Column("balance_kop", BigInteger, nullable=False, server_default="0"),
    Column("subscription_until", DateTime(timezone=True)),
    Column("trial_used_at", DateTime(timezone=True)),
    Column("auto_renew", Boolean, nullable=False, server_default=text("true")),
    Column("blocked_at", DateTime(timezone=True)),  # the user blocked the bot (403)
    Column("is_banned", Boolean, nullable=False, server_default=text("false")),
    _created_at(),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint("balance_kop >= 0", name="balance_non_negative"),
    CheckConstraint("language IN ('ru', 'en')", name="language_known"),
)
Index("ix_users_subscription_until", users.c.subscription_until)
# The outbox claim skips users who blocked the bot (a few): found without reading them all.
Index("ix_users_blocked", users.c.id, postgresql_where=users.c.blocked_at.isnot(None))
# Admins look users up by @username, case-insensitively (orbit users show @name).
Index("ix_users_username_lower", func.lower(users.c.username))

ledger = Table(
    "ledger",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("amount_kop", BigInteger, nullable=False),  # signed: credit > 0, debit < 0
    Column("balance_after_kop", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("payment_id", BigInteger, ForeignKey("payments.id")),
    Column("purchase_id", BigInteger, ForeignKey("purchases.id")),
    Column("note", Text),
    _created_at(),
    UniqueConstraint("idempotency_key", name="uq_ledger_idempotency_key"),
    CheckConstraint("amount_kop <> 0", name="amount_non_zero"),
    CheckConstraint(
        "kind IN ('topup', 'purchase', 'promo', 'referral_bonus', 'refund', 'adjustment')",
        name="kind_known",
    ),
)
Index("ix_ledger_user_id_created_at", ledger.c.user_id, ledger.c.created_at)

payments = Table(
    "payments",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("method", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("amount_kop", BigInteger, nullable=False),  # what the user asked to top up
    Column("currency", Text, nullable=False),  # TON, XTR, RUB
    Column("currency_amount", BigInteger, nullable=False),  # nanotons, stars, kopecks
    Column("credited_kop", BigInteger),  # what the ledger got (may differ for TON)
    Column("external_id", Text),  # invoice id, charge id, tx hash
    Column("comment", Text),  # TON transfer comment
    Column("pay_url", Text),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    CheckConstraint("method IN ('ton', 'stars', 'cryptobot')", name="method_known"),
    CheckConstraint(
        "status IN ('pending', 'confirmed', 'expired', 'failed', 'refunded')", name="status_known"
    ),
    CheckConstraint("amount_kop > 0", name="amount_positive"),
    CheckConstraint("currency_amount > 0", name="currency_amount_positive"),
    UniqueConstraint("method", "external_id", name="uq_payments_method_external_id"),
)
Index(
    "uq_payments_comment",
    payments.c.comment,
    unique=True,
    postgresql_where=payments.c.comment.isnot(None),
)
Index(
    "ix_payments_pending_expires_at",
    payments.c.expires_at,
    postgresql_where=payments.c.status == "pending",
)
Index("ix_payments_user_id_created_at", payments.c.user_id, payments.c.created_at)

ton_transactions = Table(
    "ton_transactions",
    metadata,
    Column("hash", Text, primary_key=True),
    Column("lt", BigInteger, nullable=False),
    Column("source", Text),
    Column("amount_nanoton", BigInteger, nullable=False),
    Column("comment", Text),
    Column("payment_id", BigInteger, ForeignKey("payments.id")),
    Column("status", Text, nullable=False),
    Column("utime", DateTime(timezone=True), nullable=False),
    _created_at(),
    Column("credited_kop", BigInteger),  # what this transfer put on a balance (matched only)
    Column("reason", Text),  # why a `rejected` transfer could not be processed
    CheckConstraint("status IN ('matched', 'unmatched', 'ignored', 'rejected')", name="status_known"),
)
Index(
    "ix_ton_transactions_unmatched",
    ton_transactions.c.created_at,
    postgresql_where=ton_transactions.c.status == "unmatched",
)

# What reconciliation found and could not fix by itself (a charge naming no payment,
# a refund the balance no longer covers): one row per fact, for the admins.
reconcile_issues = Table(
    "reconcile_issues",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("source", Text, nullable=False),  # stars, cryptobot, ton
    Column("subject", Text, nullable=False),  # charge id, invoice id, tx hash
    Column("kind", Text, nullable=False),  # charge_unmatched, refund_uncovered, refund_refused, ...
    Column("user_id", BigInteger),  # no foreign key: the payer may be unknown to us
    Column("amount_kop", BigInteger),
    Column("detail", Text, nullable=False),
    _created_at(),
    Column("resolved_at", DateTime(timezone=True)),
    UniqueConstraint("source", "subject", "kind", name="uq_reconcile_issues_source_subject_kind"),
)
Index(
    "ix_reconcile_issues_open",
    reconcile_issues.c.created_at,
    postgresql_where=reconcile_issues.c.resolved_at.is_(None),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

purchases = Table(
    "purchases",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("plan_id", Text, nullable=False),
    Column("days", Integer, nullable=False),
    Column("price_kop", BigInteger, nullable=False),
    Column("source", Text, nullable=False, server_default="balance"),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    _created_at(),
    CheckConstraint("price_kop >= 0", name="price_non_negative"),
    CheckConstraint("source IN ('balance', 'auto_renew', 'admin')", name="source_known"),
)
Index("ix_purchases_user_id", purchases.c.user_id)

marzban_instances = Table(
    "marzban_instances",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("username", Text, nullable=False),
    # `fernet:<token>` when MARZBAN_PASSWORD_KEY is set, else plain text (orbit/marzban/passwords.py)
    Column("password", Text, nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column(
        "excluded_node_names",
        ARRAY(Text),
        nullable=False,
        server_default=text("'{}'::text[]"),
    ),
    _created_at(),
    # Public base of subscription links when the panel answers relative ones (/sub/...)
    # and is reached on an address users cannot use; NULL = base_url.
    Column("sub_url", Text),
    CheckConstraint("id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'", name="id_format"),
)

configs = Table(
    "configs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("instance_id", Text, ForeignKey("marzban_instances.id"), nullable=False),
    Column("panel_username", Text, nullable=False),
    Column("name", Text, nullable=False),  # a label; Marzban usernames cannot be renamed
    Column("subscription_url", Text),
    Column("data_limit_bytes", BigInteger, nullable=False, server_default="0"),  # 0 = unlimited
    Column("status", Text, nullable=False, server_default="pending"),
    Column("needs_sync", Boolean, nullable=False, server_default=text("false")),
    Column("last_error", Text),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("deleted_at", DateTime(timezone=True)),
    # A renewal asks the panel to zero the user's usage (POST .../reset) at the next sync.
    Column("usage_reset_due", Boolean, nullable=False, server_default=text("false")),
    # Traffic used on earlier panels this period (a drain cannot move used_traffic):
    # the panel user's data limit is what remains.
    Column("usage_carried_bytes", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "status IN ('pending', 'active', 'disabled', 'deleting', 'deleted')", name="status_known"
    ),
    CheckConstraint("usage_carried_bytes >= 0", name="usage_carried_non_negative"),
    CheckConstraint("char_length(name) BETWEEN 1 AND 64", name="name_length"),
    CheckConstraint("data_limit_bytes >= 0", name="data_limit_non_negative"),
    UniqueConstraint("panel_username", name="uq_configs_panel_username"),
)
# A user's configs, deleted ones too (the create path counts those made today).
Index("ix_configs_user_id_created_at", configs.c.user_id, configs.c.created_at)
# What drift repair looks for (orbit/janitor/queries.py DRIFTED_CONFIGS).
Index(
    "ix_configs_drifted",
    configs.c.updated_at,
    postgresql_where=text("(needs_sync OR status = 'pending') AND deleted_at IS NULL"),
)
Index(
    "ix_configs_instance_id",
    configs.c.instance_id,
    postgresql_where=configs.c.deleted_at.is_(None),
)
Index("ix_configs_needs_sync", configs.c.id, postgresql_where=configs.c.needs_sync)

# Panel users to delete once no config points at them there: the old user after a
# config moved, or one a timed-out create may have made. Provisioning writes the
# row *before* it creates a user on an instance and deletes it in the transaction
# that points the config there, so no crash can leave an untracked panel user.
panel_removals = Table(
    "panel_removals",
    metadata,
    Column(
        "instance_id",
        Text,
        ForeignKey("marzban_instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("panel_username", Text, nullable=False),
    Column("config_id", BigInteger, ForeignKey("configs.id", ondelete="CASCADE"), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _created_at(),
    PrimaryKeyConstraint("instance_id", "panel_username"),
)
Index("ix_panel_removals_config_id", panel_removals.c.config_id)

promocodes = Table(
    "promocodes",
    metadata,
    Column("code", Text, primary_key=True),  # stored upper-case
    Column("kind", Text, nullable=False),
    Column("value", BigInteger, nullable=False),  # kopecks or days
    Column("max_uses", Integer),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("expires_at", DateTime(timezone=True)),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", BigInteger),
    _created_at(),
    CheckConstraint("kind IN ('balance', 'days')", name="kind_known"),
    CheckConstraint("value > 0", name="value_positive"),
    CheckConstraint("max_uses IS NULL OR max_uses > 0", name="max_uses_positive"),
    CheckConstraint("max_uses IS NULL OR uses <= max_uses", name="uses_within_max"),
    CheckConstraint("code = upper(code)", name="code_upper"),
)

promocode_activations = Table(
    "promocode_activations",
    metadata,
    Column("code", Text, ForeignKey("promocodes.code", ondelete="CASCADE"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    _created_at(),
    PrimaryKeyConstraint("code", "user_id"),
)

referrals = Table(
    "referrals",
    metadata,
    Column("referee_id", BigInteger, ForeignKey("users.id"), primary_key=True),
    Column("referrer_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("bonus_paid_at", DateTime(timezone=True)),
    _created_at(),
    CheckConstraint("referee_id <> referrer_id", name="not_self"),
)
Index("ix_referrals_referrer_id", referrals.c.referrer_id)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("text", Text, nullable=False),
    Column("created_by", BigInteger, nullable=False),
    Column("audience", Text, nullable=False, server_default="all"),
    Column("total", Integer, nullable=False, server_default="0"),
    _created_at(),
    # The admin action that created it: a second press of "send" finds this row.
    Column("idempotency_key", Text),
    Column("queued_at", DateTime(timezone=True)),  # every recipient's outbox row is written
    UniqueConstraint("idempotency_key", name="uq_broadcasts_idempotency_key"),
    # bcast_jobs: the audience's language filter, the optional button, the cancel.
    Column("language", Text),
    Column("reply_markup", JSONB),
    Column("cancelled_at", DateTime(timezone=True)),  # its pending outbox rows became `cancelled`
    CheckConstraint("audience IN ('all', 'active', 'expired', 'trial', 'never_paid')", name="audience_known"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("chat_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("reply_markup", JSONB),
    Column("broadcast_id", BigInteger, ForeignKey("broadcasts.id")),
    Column("dedup_key", Text),  # e.g. one expiry reminder per user per end date
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("last_error", Text),
    _created_at(),
    Column("sent_at", DateTime(timezone=True)),
    # 'sending': claimed by a sender; a stale one is never resent (orbit/outbox/sender.py).
    CheckConstraint(
        "status IN ('pending', 'sending', 'sent', 'failed', 'skipped', 'cancelled')", name="status_known"
    ),
    UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
)
Index(
    "ix_outbox_pending",
    outbox.c.next_attempt_at,
    outbox.c.id,
    postgresql_where=outbox.c.status == "pending",
)
# Rows a sender claimed (a handful): found fast when a dead sender's claims go stale.
Index(
    "ix_outbox_sending",
    outbox.c.next_attempt_at,
    postgresql_where=outbox.c.status == "sending",
)
Index(
    "ix_outbox_broadcast_id",
    outbox.c.broadcast_id,
    postgresql_where=outbox.c.broadcast_id.isnot(None),
)

# Who did what to whom, from the bot or the CLI (migration audit_audit_trail): one row
# per admin action, written in the action's own transaction (orbit/audit/); append-only.
# No foreign key on target_user_id: the trail names whoever it names, for ever.
admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=text("orbit_now()")),
    Column("actor", Text, nullable=False),  # an admin's Telegram id, or cli:<os user>
    Column("action", Text, nullable=False),  # e.g. balance.adjust, user.ban (docs/admin.md)
    Column("target_user_id", BigInteger),
    Column("target", Text),  # what else it acted on: a promo code, an instance id
    Column("before", JSONB),
    Column("after", JSONB),
    CheckConstraint("char_length(actor) BETWEEN 1 AND 100", name="actor_length"),
    CheckConstraint("char_length(action) BETWEEN 1 AND 64", name="action_length"),
)
Index("ix_admin_audit_at_id", admin_audit.c.at, admin_audit.c.id)  # latest first
Index("ix_admin_audit_target_user_id_id", admin_audit.c.target_user_id, admin_audit.c.id)
Index("ix_admin_audit_actor_id", admin_audit.c.actor, admin_audit.c.id)

# A long admin action (a drain, a broadcast's fan-out and follow-up) started from the
# bot: the janitor's job loop claims it (SKIP LOCKED), so a bot restart never cuts it
# short; `heartbeat_at` older than the job lease means its worker died (reclaimed).
jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("state", Text, nullable=False, server_default="queued"),
    Column("progress", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_by", BigInteger, nullable=False),  # admin's Telegram id, 0 for the CLI
    Column("chat_id", BigInteger),  # where progress is shown in place (the admin's message)
    Column("message_id", BigInteger),
    Column("locale", Text, nullable=False, server_default="en"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    _created_at(),
    Column("started_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('broadcast', 'drain')", name="kind_known"),
    CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state_known"),
)
Index("ix_jobs_open", jobs.c.id, postgresql_where=jobs.c.state.in_(["queued", "running"]))

# One movable "now" (migration 0005_clock): `orbit_now()` = now() + this offset.
# Tests and the sandbox's clock move it; production leaves it at 0.
clock = Table(
    "clock",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("offset_seconds", Float, nullable=False, server_default="0"),
    CheckConstraint("singleton", name="one_row"),
)

# The ledger is append-only: the database refuses UPDATE and DELETE on it.
# (One statement each: asyncpg prepares every statement Alembic sends.)
LEDGER_APPEND_ONLY_SQL = (
    """CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only' USING ERRCODE = 'restrict_violation';
END $$""",
    """CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only()""",
)
LEDGER_APPEND_ONLY_DROP_SQL = (
    "DROP TRIGGER IF EXISTS ledger_append_only ON ledger",
    "DROP FUNCTION IF EXISTS ledger_append_only()",
)

# The audit trail is append-only too (same shape as the ledger's trigger).
AUDIT_APPEND_ONLY_SQL = (
    """CREATE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only' USING ERRCODE = 'restrict_violation';
END $$""",
    """CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only()""",
)
AUDIT_APPEND_ONLY_DROP_SQL = (
    "DROP TRIGGER IF EXISTS admin_audit_append_only ON admin_audit",
    "DROP FUNCTION IF EXISTS admin_audit_append_only()",
)
