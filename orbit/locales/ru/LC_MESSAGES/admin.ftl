# 🛠 Панель администратора (только ADMIN_IDS) и ответ заблокированному пользователю.

banned-text = Извините, доступ к этому боту для вас ограничен. Если это ошибка, напишите { $support }.

admin-title = 🛠 <b>Панель администратора</b>
btn-admin-stats = 📊 Статистика
btn-admin-health = 🩺 Состояние
btn-admin-user = 👤 Найти пользователя
btn-admin-promos = 🎟 Промокоды
btn-admin-instances = 🖥 Инстансы
btn-admin-broadcast = 📣 Рассылка
btn-admin-back = « Панель администратора
btn-admin-refresh = 🔄 Обновить
btn-admin-cancel = ✖️ Отмена
btn-admin-confirm = ✅ Подтвердить
admin-cancelled = Отменено.
admin-text-only = Отправьте текст или нажмите «Отмена».
admin-confirm-stale = Это подтверждение устарело. Начните заново.
admin-confirm-pending = Нажмите кнопку выше: подтвердить или отменить.
admin-none = —

# 📊 Статистика
admin-stats-title = 📊 <b>Статистика</b> на { $at }
admin-stats-users = 👥 Пользователи: { $total } (новых сегодня: { $new }) · с подпиской: { $active } · заблокировали бота: { $blocked } · забанены: { $banned }
admin-stats-revenue = 💰 <b>Выручка, ₽</b>: сегодня / 7 дней / 30 дней / всего
admin-stats-row = { $name }: { $today } / { $week } / { $month } / { $total }
admin-source-purchases = Покупки тарифов
admin-source-all = Все пополнения
admin-source-ton = Пополнения, TON
admin-source-stars = Пополнения, Stars
admin-source-cryptobot = Пополнения, CryptoBot
admin-stats-pending = ⏳ Ожидающие платежи: { $count } ({ $amount } ₽)
admin-stats-unmatched = ❓ Неопознанные переводы TON: { $count }

# 🩺 Состояние
admin-health-title = 🩺 <b>Состояние</b>
admin-health-deps = Postgres: { $postgres } · Redis: { $redis } · схема: { $schema } (ожидается { $expected })
admin-health-worker = { $mark } { $name }: пульс { $age } · pid { $pid } · supervisor: { $state }
admin-health-age = { $seconds } с назад
admin-health-missing = нет
admin-health-ok = ✅ Всё работает
admin-health-bad = ⚠️ Что-то не работает

# 👤 Пользователи
admin-user-prompt = 👤 Отправьте Telegram id или @username.
admin-user-head = 👤 <b>{ $name }</b> · id <code>{ $id }</code> · { $username }
admin-user-meta = Язык: { $language } · с нами с { $joined } · был(а) { $seen }
admin-user-balance = 💰 Баланс: <b>{ $balance } ₽</b>
admin-user-sub-active = 📅 Подписка до { $until } · тариф: { $plan } · автопродление: { $renew }
admin-user-sub-expired = 📅 Подписка закончилась { $until }
admin-user-sub-none = 📅 Подписки нет
admin-user-banned = 🚫 Забанен
admin-user-blocked = 🔕 Заблокировал(а) бота { $at }
admin-user-configs = 🔑 Конфигов: { $count }
admin-user-config = • { $name } — { $instance }, { $status }
admin-user-payments = 💳 Последние платежи:
admin-user-payment = • #{ $id } { $method } { $amount } ₽ — { $status }, { $at }
admin-user-ledger = 📒 Журнал баланса:
admin-user-entry = • { $amount } ₽ { $kind } → { $after } ₽, { $at } { $note }
admin-yes = вкл.
admin-no = выкл.
btn-admin-adjust = 💰 Изменить баланс
btn-admin-ban = 🚫 Забанить
btn-admin-unban = ✅ Разбанить
btn-admin-user-refresh = 🔄 Обновить
admin-banned-done = 🚫 Пользователь { $id } забанен.
admin-unbanned-done = ✅ Пользователь { $id } разбанен.

# 💰 Изменение баланса
admin-adjust-prompt = 💰 Баланс { $id }: { $balance } ₽. Отправьте сумму в ₽: <code>+100</code> добавит, <code>-50</code> спишет.
admin-adjust-reason-prompt = Изменить на { $amount } ₽. Почему? Отправьте короткую причину: она попадёт в журнал.
admin-adjust-confirm =
    Изменить баланс { $id } на <b>{ $amount } ₽</b>?
    Причина: { $reason }
admin-adjust-done = ✅ Баланс { $id } изменён на { $amount } ₽. Теперь: { $balance } ₽.
admin-adjust-replayed = Это изменение уже сделано. Баланс { $id }: { $balance } ₽.
btn-admin-open-user = 👤 Открыть пользователя { $id }

# Отказы (orbit/admin/errors.py)
admin-error = ❌ Не получилось. Попробуйте ещё раз.
admin-amount-invalid = ❌ Отправьте сумму в ₽, например <code>100</code>, <code>-50</code> или <code>99.50</code>.
admin-amount-zero = ❌ Сумма не может быть нулевой.
admin-amount-too-large = ❌ Это больше { $limit } ₽. Опечатка?
admin-user-ref-invalid = ❌ Отправьте Telegram id (цифры) или @username.
admin-user-not-found = ❌ Пользователь { $user } не найден.
admin-reason-empty = ❌ Отправьте причину (до { $limit } символов).
admin-adjust-negative = ❌ Отказано: на балансе { $balance } ₽, списать { $needed } ₽ нельзя.
admin-ban-admin = ❌ Администратора нельзя забанить.
admin-broadcast-empty = ❌ Текст пустой.
admin-broadcast-too-long = ❌ В тексте { $length } символов; Telegram принимает не больше { $limit }.
admin-broadcast-not-found = ❌ Рассылки #{ $id } нет.
admin-promo-line-invalid = ❌ { $reason }

# 🎟 Промокоды
admin-promos-title = 🎟 <b>Промокоды</b> (действующие)
admin-promos-empty = Действующих промокодов нет.
admin-promo-line = • <code>{ $code }</code> — { $value } · использован { $uses }{ $expires }
admin-promo-value-balance = { $amount } ₽
admin-promo-value-days = { $days ->
    [one] { $days } день
    [few] { $days } дня
   *[many] { $days } дней
}
admin-promo-expires = {" "}· до { $at }
btn-admin-promo-new = ➕ Новый промокод
btn-admin-promo-off = ⏸ { $code }
admin-promo-prompt = Отправьте новый промокод: <code>КОД balance 100 [ЛИМИТ]</code> или <code>КОД days 30 [ЛИМИТ]</code>.
admin-promo-created = ✅ Промокод <code>{ $code }</code> создан.
admin-promo-disabled = ⏸ Промокод { $code } отключён.
admin-promo-refused = ❌ Не создан: { $reason }

# 🖥 Инстансы
admin-instances-title = 🖥 <b>Инстансы</b>
admin-instances-empty = Инстансов нет (<code>orbit instances add</code>).
admin-instance-line = { $mark } <b>{ $id }</b> ({ $name }) — { $state } · приоритет { $priority } · конфигов: { $configs } · { $health }
admin-instance-active = включён
admin-instance-inactive = выключен
admin-instance-up = работает, нод { $usable }/{ $total }
admin-instance-down = НЕ РАБОТАЕТ: { $error }
admin-instance-health-unknown = состояние неизвестно
admin-instance-stale = (устарело)
btn-admin-inst-enable = ▶️ Включить { $id }
btn-admin-inst-disable = ⏸ Выключить { $id }
btn-admin-inst-drain = 🚚 Освободить { $id }
admin-instance-enabled = ▶️ Инстанс { $id } включён: новые конфиги могут попадать на него.
admin-instance-disabled = ⏸ Инстанс { $id } выключен: новые конфиги на него не попадут; его конфиги ({ $configs }) остаются.
admin-instance-not-found = ❌ Инстанса { $id } нет.
admin-drain-confirm = 🚚 Перенести все конфиги ({ $configs }) с { $id } на другие инстансы? Сначала он будет выключен; каждый пользователь получит новую ссылку.
admin-drain-running = 🚚 Перенос { $id } в очереди: прогресс и отчёт появятся здесь.
admin-drain-done = 🚚 Перенос с { $id }: перенесено { $moved }, удалено { $deleted }, уже на других { $skipped }, ошибок { $failed }.
admin-drain-incomplete = Не все конфиги перенесены: запустите ещё раз, чтобы повторить.
admin-drain-refused = ❌ Перенос с { $id } невозможен: { $reason }

# 📣 Рассылки
admin-broadcast-prompt = 📣 Отправьте текст рассылки (форматирование сохранится). Получателей: { $count } ({ $audience }).
admin-broadcast-preview = ⬆️ Так это будет выглядеть. Отправить { $count } пользователям ({ $audience })?
btn-admin-broadcast-send = 📣 Отправить
admin-broadcast-queued = ✅ Рассылка #{ $id } в очереди: { $count } сообщений.
admin-broadcast-replayed = Рассылка #{ $id } уже в очереди: { $count } сообщений.
btn-admin-broadcast-progress = 🔄 Прогресс
admin-broadcast-progress = 📣 Рассылка #{ $id }: получателей { $total } — отправлено { $sent }, в очереди { $pending }, ошибок { $failed }, пропущено { $skipped }.
admin-broadcast-queuing = ⏳ Ещё ставится в очередь.

## Broadcasts: audience, button, cancel (bcast)
admin-audience-all = все доступные
admin-audience-active = с активной подпиской
admin-audience-expired = с истёкшей подпиской
admin-audience-trial = только пробный период
admin-audience-never-paid = ни разу не платили
admin-audience-with-language = { $audience }, язык { $language }
btn-admin-audience = { $name }: { $count }
btn-admin-language-any = 🌐 любой язык
btn-admin-language-en = 🇬🇧 en
btn-admin-language-ru = 🇷🇺 ru
admin-broadcast-audience = 📣 Кому отправить рассылку? (заблокировавшие бота и забаненные не получат; язык: { $language })
admin-broadcast-button-prompt = 🔘 Добавить кнопку? Отправьте <code>ТЕКСТ=https://…</code> для ссылки или <code>ТЕКСТ=экран</code>, чтобы открыть экран бота ({ $screens }).
btn-admin-broadcast-no-button = ➡️ Без кнопки
btn-admin-broadcast-cancel = ⏹ Остановить
admin-broadcast-audience-line = 👥 { $audience }
admin-broadcast-cancelled = ⏹ Остановлена: { $count } сообщений не отправлено.
admin-broadcast-finished = ✅ Завершена.
admin-broadcast-cancel-done = ⏹ Рассылка #{ $id } остановлена: { $count } сообщений не будет отправлено.
admin-broadcast-cancel-again = Рассылка #{ $id } уже остановлена.
admin-broadcast-audience-invalid = ❌ Неизвестная аудитория или язык: { $value }.
admin-broadcast-button-invalid = ❌ Это не кнопка: { $reason }.
admin-drain-progress = 🚚 Перенос { $id }: { $line }

## Maintenance mode (bcast)
maintenance-text = 🛠 Бот ненадолго на техническом обслуживании. Оплаты, которые вы сделаете, дойдут; всё остальное скоро заработает. Спасибо за терпение!
btn-admin-maintenance = 🛠 Обслуживание
admin-maintenance-off = 🛠 Режим обслуживания выключен: ботом пользуются все.
admin-maintenance-on = 🛠 Режим обслуживания ВКЛЮЧЁН с { $since } ({ $by }). Пользователи получают это один раз, оплаты проходят, администраторам доступно всё:
btn-admin-maintenance-on = 🔧 Включить
btn-admin-maintenance-off = ✅ Выключить
btn-admin-maintenance-default = 💬 Сообщение по умолчанию
admin-maintenance-prompt = 🛠 Отправьте сообщение для пользователей (каждый получит его один раз) или используйте стандартное:
    { $default }
admin-maintenance-switched-on = 🔧 Режим обслуживания включён.
admin-maintenance-switched-off = ✅ Режим обслуживания выключен.

## Statistics: growth, trials, churn, instances (bcast)
admin-stats-new = 🆕 Новые пользователи: { $day } (1 день) · { $week } (7 дней) · { $month } (30 дней)
admin-stats-trials = 🎁 Пробных периодов начато: { $day } · { $week } · { $month }
admin-stats-conversion = 💳 Из пробного в платные: { $converted } из { $trials } ({ $share })
admin-stats-by-plan = 📦 Активные по тарифам: { $plans }
admin-stats-churn = 📉 Закончились и не продлены: { $week } (7 дней) · { $month } (30 дней)
admin-stats-instances = 🖥 Инстансы (конфиги · пользователи панели · узлы · лучший балл):
admin-stats-instance = • { $id }: { $configs } · { $users } · { $usable }/{ $total } · { $score } ({ $status })

## Instances: node scores, exclude/include, refresh (bcast)
admin-instance-scores = ⚖️ Баллы (меньше — лучше): { $scores }
admin-instance-excluded = ⛔ Исключённые узлы: { $nodes }
btn-admin-node-exclude = ⛔ Исключить узел { $id }
btn-admin-node-include = ✅ Вернуть { $node }
btn-admin-balancer-poke = ⚖️ Обновить балансировщик
admin-balancer-poked = ⚖️ Балансировщик пересчитывает все инстансы; обновите экран через несколько секунд.
admin-node-prompt = ⛔ Отправьте имя узла { $id }, который нужно исключить (как в панели).
admin-node-excluded = ⛔ { $id }: исключённые узлы теперь { $nodes }.
admin-node-included = ✅ { $id }: узел { $node } снова учитывается.
admin-node-invalid = ❌ Такого узла нет: { $node }.
