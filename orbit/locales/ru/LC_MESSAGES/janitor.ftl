# Уведомления janitor (доставляются через outbox).
janitor-buy-button = 🛒 Продлить
janitor-reminder-3d = ⏳ Ваша подписка Orbit заканчивается { $until }. Продлите её, чтобы VPN продолжал работать.
janitor-reminder-1d = ⚠️ Ваша подписка Orbit заканчивается завтра ({ $until }). Продлите сейчас, чтобы остаться на связи.
janitor-reminder-expired = ❌ Ваша подписка Orbit закончилась { $until }. Конфигурации приостановлены до продления.
janitor-renewed = 🔄 Подписка продлена автоматически на { $plan ->
    [one] { $plan } месяц
    [few] { $plan } месяца
   *[many] { $plan } месяцев
} с баланса. Активна до { $until }.
