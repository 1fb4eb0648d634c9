# 👤 The admin's user card, continued (referrals, days, refunds, configs), and the audit trail.

btn-admin-audit = 📜 Audit log
admin-audit-title = 📜 <b>Admin actions</b> (latest { $count })
admin-audit-empty = No admin actions yet.
admin-audit-line = • { $at } · { $actor } · <b>{ $action }</b> { $target }: { $before } → { $after }

admin-card-invited-by = 🤝 Invited by: { $who }
admin-card-invited = 👥 Invited { $count } users · bonuses earned: { $bonus } ₽
admin-card-referral = { $id } { $username } joined { $joined }, { $bonus }
admin-card-bonus-paid = bonus paid
admin-card-bonus-not-yet = no bonus yet
admin-card-audit = 📜 Admin actions:
admin-card-audit-title = 📜 <b>Admin actions on user { $id }</b>

btn-admin-days = 📅 Grant days
btn-admin-configs = 🔑 Configs
btn-admin-user-audit = 📜 Admin actions
btn-admin-refund = ↩️ Refund #{ $id }
btn-admin-refund-yes = ↩️ Refund

admin-card-configs-title = 🔑 <b>Configs of user { $id }</b>: { $count }
admin-card-config = • { $name } — { $instance }, { $status } · { $usage }
admin-card-usage = { $used } GiB used, last online { $online }
admin-card-usage-unknown = usage unknown (the panel did not answer)
admin-card-never = never

admin-days-prompt = 📅 How many days to add to the subscription of { $id }? Send a number like 30, or -7 to take days away.
admin-days-reason-prompt = Why? (kept in the audit trail)
admin-days-invalid = ❌ Send a whole number of days like 30 or -7 (not zero, at most { $limit }).
admin-days-nothing-to-remove = ❌ User { $id } has no running subscription: there are no days to take away.
admin-days-confirm-add = Add { $days } days to the subscription of { $id }?
    Reason: { $reason }
admin-days-confirm-remove = Take { $days } days from the subscription of { $id }?
    Reason: { $reason }
admin-days-added = ✅ { $days } days added to { $id }. Subscription until { $until }; the configs follow.
admin-days-removed = ✅ { $days } days taken from { $id }. Subscription until { $until }; the configs follow.
admin-days-replayed = This was done already: the subscription of { $id } runs until { $until }.

admin-refund-confirm = ↩️ Refund payment #{ $id } of user { $user }: { $amount } ₽ taken from the balance, { $stars } ⭐ returned?
admin-refund-not-refundable = ❌ Payment #{ $id } is not a paid Stars top-up of this user.
