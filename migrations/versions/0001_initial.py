"""initial schema

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23 18:48:08.165104
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from orbit.schema import LEDGER_APPEND_ONLY_DROP_SQL, LEDGER_APPEND_ONLY_SQL

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('broadcasts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=False),
    sa.Column('audience', sa.Text(), server_default='all', nullable=False),
    sa.Column('total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts')),
    sa.UniqueConstraint('idempotency_key', name='uq_broadcasts_idempotency_key')
    )
    op.create_table('cursors',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cursors'))
    )
    op.create_table('marzban_instances',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('base_url', sa.Text(), nullable=False),
    sa.Column('username', sa.Text(), nullable=False),
    sa.Column('password', sa.Text(), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('excluded_node_names', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'", name=op.f('ck_marzban_instances_id_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_marzban_instances'))
    )
    op.create_table('promocodes',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('balance', 'days')", name=op.f('ck_promocodes_kind_known')),
    sa.CheckConstraint('code = upper(code)', name=op.f('ck_promocodes_code_upper')),
    sa.CheckConstraint('max_uses IS NULL OR max_uses > 0', name=op.f('ck_promocodes_max_uses_positive')),
    sa.CheckConstraint('max_uses IS NULL OR uses <= max_uses', name=op.f('ck_promocodes_uses_within_max')),
    sa.CheckConstraint('value > 0', name=op.f('ck_promocodes_value_positive')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_promocodes'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('username', sa.Text(), nullable=True),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('language', sa.Text(), server_default='en', nullable=False),
    sa.Column('balance_kop', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('subscription_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trial_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('auto_renew', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_banned', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("language IN ('ru', 'en')", name=op.f('ck_users_language_known')),
    sa.CheckConstraint('balance_kop >= 0', name=op.f('ck_users_balance_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_index('ix_users_subscription_until', 'users', ['subscription_until'], unique=False)
    op.create_index('ix_users_username_lower', 'users', [sa.text('lower(username)')], unique=False)
    op.create_table('configs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('instance_id', sa.Text(), nullable=False),
    sa.Column('panel_username', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('subscription_url', sa.Text(), nullable=True),
    sa.Column('data_limit_bytes', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False),
    sa.Column('needs_sync', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'active', 'disabled', 'deleting', 'deleted')", name=op.f('ck_configs_status_known')),
    sa.CheckConstraint('char_length(name) BETWEEN 1 AND 64', name=op.f('ck_configs_name_length')),
    sa.CheckConstraint('data_limit_bytes >= 0', name=op.f('ck_configs_data_limit_non_negative')),
    sa.ForeignKeyConstraint(['instance_id'], ['marzban_instances.id'], name=op.f('fk_configs_instance_id_marzban_instances')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_configs_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_configs')),
    sa.UniqueConstraint('panel_username', name='uq_configs_panel_username')
    )
    op.create_index('ix_configs_instance_id', 'configs', ['instance_id'], unique=False, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_index('ix_configs_needs_sync', 'configs', ['id'], unique=False, postgresql_where='needs_sync')
    op.create_index('ix_configs_user_id', 'configs', ['user_id'], unique=False, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_table('panel_removals',
    sa.Column('instance_id', sa.Text(), nullable=False),
    sa.Column('panel_username', sa.Text(), nullable=False),
    sa.Column('config_id', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['config_id'], ['configs.id'], name=op.f('fk_panel_removals_config_id_configs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['marzban_instances.id'], name=op.f('fk_panel_removals_instance_id_marzban_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', 'panel_username', name=op.f('pk_panel_removals'))
    )
    op.create_index('ix_panel_removals_config_id', 'panel_removals', ['config_id'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('reply_markup', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('broadcast_id', sa.BigInteger(), nullable=True),
    sa.Column('dedup_key', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'skipped')", name=op.f('ck_outbox_status_known')),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], name=op.f('fk_outbox_broadcast_id_broadcasts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedup_key', name='uq_outbox_dedup_key')
    )
    op.create_index('ix_outbox_broadcast_id', 'outbox', ['broadcast_id'], unique=False, postgresql_where=sa.text('broadcast_id IS NOT NULL'))
    op.create_index('ix_outbox_pending', 'outbox', ['next_attempt_at', 'id'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_outbox_sending', 'outbox', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'sending'"))
    op.create_table('payments',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False),
    sa.Column('amount_kop', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('currency_amount', sa.BigInteger(), nullable=False),
    sa.Column('credited_kop', sa.BigInteger(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('pay_url', sa.Text(), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("method IN ('ton', 'stars', 'cryptobot')", name=op.f('ck_payments_method_known')),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'expired', 'failed', 'refunded')", name=op.f('ck_payments_status_known')),
    sa.CheckConstraint('amount_kop > 0', name=op.f('ck_payments_amount_positive')),
    sa.CheckConstraint('currency_amount > 0', name=op.f('ck_payments_currency_amount_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('method', 'external_id', name='uq_payments_method_external_id')
    )
    op.create_index('ix_payments_pending_expires_at', 'payments', ['expires_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_payments_user_id_created_at', 'payments', ['user_id', 'created_at'], unique=False)
    op.create_index('uq_payments_comment', 'payments', ['comment'], unique=True, postgresql_where=sa.text('comment IS NOT NULL'))
    op.create_table('promocode_activations',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['code'], ['promocodes.code'], name=op.f('fk_promocode_activations_code_promocodes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_promocode_activations_user_id_users')),
    sa.PrimaryKeyConstraint('code', 'user_id', name=op.f('pk_promocode_activations'))
    )
    op.create_table('purchases',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('plan_id', sa.Text(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('price_kop', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.Text(), server_default='balance', nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("source IN ('balance', 'auto_renew', 'admin')", name=op.f('ck_purchases_source_known')),
    sa.CheckConstraint('price_kop >= 0', name=op.f('ck_purchases_price_non_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_purchases_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchases'))
    )
    op.create_index('ix_purchases_user_id', 'purchases', ['user_id'], unique=False)
    op.create_table('referrals',
    sa.Column('referee_id', sa.BigInteger(), nullable=False),
    sa.Column('referrer_id', sa.BigInteger(), nullable=False),
    sa.Column('bonus_paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('referee_id <> referrer_id', name=op.f('ck_referrals_not_self')),
    sa.ForeignKeyConstraint(['referee_id'], ['users.id'], name=op.f('fk_referrals_referee_id_users')),
    sa.ForeignKeyConstraint(['referrer_id'], ['users.id'], name=op.f('fk_referrals_referrer_id_users')),
    sa.PrimaryKeyConstraint('referee_id', name=op.f('pk_referrals'))
    )
    op.create_index('ix_referrals_referrer_id', 'referrals', ['referrer_id'], unique=False)
    op.create_table('ledger',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('amount_kop', sa.BigInteger(), nullable=False),
    sa.Column('balance_after_kop', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('purchase_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('topup', 'purchase', 'promo', 'referral_bonus', 'refund', 'adjustment')", name=op.f('ck_ledger_kind_known')),
    sa.CheckConstraint('amount_kop <> 0', name=op.f('ck_ledger_amount_non_zero')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_ledger_payment_id_payments')),
    sa.ForeignKeyConstraint(['purchase_id'], ['purchases.id'], name=op.f('fk_ledger_purchase_id_purchases')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ledger_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger')),
    sa.UniqueConstraint('idempotency_key', name='uq_ledger_idempotency_key')
    )
    op.create_index('ix_ledger_user_id_created_at', 'ledger', ['user_id', 'created_at'], unique=False)
    op.create_table('ton_transactions',
    sa.Column('hash', sa.Text(), nullable=False),
    sa.Column('lt', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('amount_nanoton', sa.BigInteger(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('utime', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('matched', 'unmatched', 'ignored')", name=op.f('ck_ton_transactions_status_known')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_ton_transactions_payment_id_payments')),
    sa.PrimaryKeyConstraint('hash', name=op.f('pk_ton_transactions'))
    )
    op.create_index('ix_ton_transactions_unmatched', 'ton_transactions', ['created_at'], unique=False, postgresql_where=sa.text("status = 'unmatched'"))

    for statement in LEDGER_APPEND_ONLY_SQL:
        op.execute(statement)

def downgrade() -> None:
    for statement in LEDGER_APPEND_ONLY_DROP_SQL:
        op.execute(statement)
    op.drop_index('ix_ton_transactions_unmatched', table_name='ton_transactions', postgresql_where=sa.text("status = 'unmatched'"))
    op.drop_table('ton_transactions')
    op.drop_index('ix_ledger_user_id_created_at', table_name='ledger')
    op.drop_table('ledger')
    op.drop_index('ix_referrals_referrer_id', table_name='referrals')
    op.drop_table('referrals')
    op.drop_index('ix_purchases_user_id', table_name='purchases')
    op.drop_table('purchases')
    op.drop_table('promocode_activations')
    op.drop_index('uq_payments_comment', table_name='payments', postgresql_where=sa.text('comment IS NOT NULL'))
    op.drop_index('ix_payments_user_id_created_at', table_name='payments')
    op.drop_index('ix_payments_pending_expires_at', table_name='payments', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('payments')
    op.drop_index('ix_outbox_sending', table_name='outbox', postgresql_where=sa.text("status = 'sending'"))
    op.drop_index('ix_outbox_pending', table_name='outbox', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_outbox_broadcast_id', table_name='outbox', postgresql_where=sa.text('broadcast_id IS NOT NULL'))
    op.drop_table('outbox')
    op.drop_index('ix_panel_removals_config_id', table_name='panel_removals')
    op.drop_table('panel_removals')
    op.drop_index('ix_configs_user_id', table_name='configs', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_index('ix_configs_needs_sync', table_name='configs', postgresql_where='needs_sync')
    op.drop_index('ix_configs_instance_id', table_name='configs', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_table('configs')
    op.drop_index('ix_users_username_lower', table_name='users')
    op.drop_index('ix_users_subscription_until', table_name='users')
    op.drop_table('users')
    op.drop_table('promocodes')
    op.drop_table('marzban_instances')
    op.drop_table('cursors')
    op.drop_table('broadcasts')
