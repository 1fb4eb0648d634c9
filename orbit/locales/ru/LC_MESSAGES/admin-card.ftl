# 👤 Карточка пользователя в админке (рефералы, дни, возвраты, конфиги) и журнал действий.

btn-admin-audit = 📜 Журнал действий
admin-audit-title = 📜 <b>Действия админов</b> (последние { $count })
admin-audit-empty = Действий админов пока нет.
admin-audit-line = • { $at } · { $actor } · <b>{ $action }</b> { $target }: { $before } → { $after }

admin-card-invited-by = 🤝 Пригласил: { $who }
admin-card-invited = 👥 Пригласил пользователей: { $count } · бонусов получено: { $bonus } ₽
admin-card-referral = { $id } { $username } пришёл { $joined }, { $bonus }
admin-card-bonus-paid = бонус выплачен
admin-card-bonus-not-yet = бонуса ещё нет
admin-card-audit = 📜 Действия админов:
admin-card-audit-title = 📜 <b>Действия админов с пользователем { $id }</b>

btn-admin-days = 📅 Выдать дни
btn-admin-configs = 🔑 Конфиги
btn-admin-user-audit = 📜 Действия админов
btn-admin-refund = ↩️ Возврат #{ $id }
btn-admin-refund-yes = ↩️ Вернуть

admin-card-configs-title = 🔑 <b>Конфиги пользователя { $id }</b>: { $count }
admin-card-config = • { $name } — { $instance }, { $status } · { $usage }
admin-card-usage = использовано { $used } ГиБ, последний раз онлайн { $online }
admin-card-usage-unknown = расход неизвестен (панель не ответила)
admin-card-never = никогда

admin-days-prompt = 📅 Сколько дней добавить к подписке { $id }? Пришлите число, например 30, или -7, чтобы убрать дни.
admin-days-reason-prompt = Причина? (сохраняется в журнале)
admin-days-invalid = ❌ Пришлите целое число дней, например 30 или -7 (не ноль, не больше { $limit }).
admin-days-nothing-to-remove = ❌ У пользователя { $id } нет действующей подписки: убирать нечего.
admin-days-confirm-add = Добавить { $days } дн. к подписке { $id }?
    Причина: { $reason }
admin-days-confirm-remove = Убрать { $days } дн. из подписки { $id }?
    Причина: { $reason }
admin-days-added = ✅ { $id }: добавлено дней — { $days }. Подписка до { $until }; конфиги обновятся.
admin-days-removed = ✅ { $id }: убрано дней — { $days }. Подписка до { $until }; конфиги обновятся.
admin-days-replayed = Это уже сделано: подписка { $id } действует до { $until }.

admin-refund-confirm = ↩️ Вернуть платёж #{ $id } пользователя { $user }: { $amount } ₽ списать с баланса, { $stars } ⭐ вернуть?
admin-refund-not-refundable = ❌ Платёж #{ $id } — не оплаченное пополнение звёздами этого пользователя.
