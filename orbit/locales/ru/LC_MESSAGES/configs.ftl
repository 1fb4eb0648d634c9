# 🔑 Мои конфиги: список, один конфиг, создание, переименование, удаление.

configs-title = <b>🔑 Мои конфиги</b> ({ $count } из { $max })
configs-until = 📅 Действуют до: { $until }
configs-until-inactive = нет активной подписки
configs-empty = Конфигов пока нет. Создайте конфиг и импортируйте его ссылку в VPN-приложение (см. ❓ Помощь).
configs-item =
    { $index }. <b>{ $name }</b> — { $status }
        трафик: { $traffic }

configs-status-active = ✅ активен
configs-status-pending = ⏳ настраивается
configs-status-disabled = ⏸ отключён
configs-status-limited = 🚫 лимит трафика исчерпан
configs-status-expired = ⌛ истёк
configs-status-on_hold = ⏳ ожидает подключения
configs-status-unknown = ❔ сервер не отвечает

configs-traffic = { $used } из { $limit }
configs-traffic-unlimited = { $used }, без лимита
configs-traffic-unknown = неизвестно
configs-traffic-not-read = ещё не получен
# Расход, сохранённый ранее, и когда он получен: «1.2 ГБ из 50 ГБ · 5 мин назад».
configs-traffic-as-of = { $traffic } · { $age }
configs-read-now = только что
configs-read-minutes-ago = { $minutes } мин назад
configs-read-hours-ago = { $hours } ч назад
configs-read-at = на { $at }
configs-size = { $value } { $unit ->
    [kb] КБ
    [mb] МБ
    [gb] ГБ
    [tb] ТБ
   *[b] Б
}

configs-detail =
    <b>{ $name }</b>

    Статус: { $status }
    Действует до: { $until }
    Использовано трафика: { $traffic }
configs-link =
    Ссылка подписки (нажмите, чтобы скопировать, и импортируйте в VPN-приложение или отсканируйте QR-код):
    <code>{ $url }</code>
configs-link-pending = Ссылка появится здесь, когда конфиг будет настроен.

btn-config-new = ➕ Новый конфиг
btn-config-qr = 📷 QR-код
btn-config-rename = ✏️ Переименовать
btn-config-delete = 🗑 Удалить
btn-config-delete-yes = 🗑 Да, удалить
btn-config-cancel = ✖️ Отмена
btn-configs-back = « Мои конфиги

configs-creating = ⏳ Создаём конфиг…
configs-created = ✅ Конфиг «{ $name }» готов.
configs-create-failed = ❌ Ни один VPN-сервер не ответил, конфиг не создан. Попробуйте ещё раз через несколько минут.
configs-create-stale = Эта кнопка устарела: конфиг по предыдущему нажатию уже создан. Откройте 🔑 Мои конфиги.
configs-no-subscription = Для конфигов нужна активная подписка: возьмите пробный период или купите тариф.
configs-limit-reached = Ваш тариф позволяет { $limit ->
    [one] { $limit } конфиг
    [few] { $limit } конфига
   *[many] { $limit } конфигов
}, и все они уже созданы. Удалите один, чтобы создать новый.
configs-not-found = Этого конфига нет в вашем списке (возможно, он удалён).
configs-not-ready = Конфиг ещё настраивается. Попробуйте через минуту.
configs-error = Что-то пошло не так с конфигами. Попробуйте ещё раз.

configs-qr-caption = QR-код конфига «{ $name }»: отсканируйте его в VPN-приложении.

configs-rename-prompt =
    Отправьте новое название для «{ $name }».

    До { $max } символов: буквы, цифры, пробелы и - _ . , ( ) # + ! '
configs-name-invalid = Такое название не подходит: от 1 до { $max } букв, цифр, пробелов и - _ . , ( ) # + ! ' — отправьте другое или /cancel.
configs-rename-cancelled = Переименование отменено.
configs-renamed = ✏️ Новое название: «{ $name }».

configs-delete-confirm =
    Удалить «{ $name }»?

    VPN-приложения с этим конфигом сразу перестанут работать. Отменить удаление нельзя.
configs-deleted = 🗑 Конфиг «{ $name }» удалён.
