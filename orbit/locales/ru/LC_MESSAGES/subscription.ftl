# Экран подписки, бесплатный период, тарифы и покупки.

plan-name = { $months } { $months ->
    [one] месяц
    [few] месяца
   *[many] месяцев
}
plan-button = { $name } — { $price } ₽

sub-title = <b>Подписка</b>
sub-active = Активна до { $until }.
sub-trial = Бесплатный период до { $until }.
sub-expired = Закончилась { $until }.
sub-none = У вас пока нет подписки.
sub-plan = Тариф: { $name }.
sub-auto-renew-on = Автопродление: включено. Когда подписка закончится, тот же тариф будет куплен снова с баланса.
sub-auto-renew-off = Автопродление: выключено.
btn-auto-renew-off = 🔁 Выключить автопродление
btn-auto-renew-on = 🔁 Включить автопродление
btn-extend = 🛒 Продлить
auto-renew-saved-on = Автопродление включено.
auto-renew-saved-off = Автопродление выключено.

trial-started = 🎁 Бесплатный период действует до { $until }. Создайте конфиг в разделе 🔑 Мои конфиги, чтобы подключиться.
trial-used = Вы уже использовали бесплатный период.
trial-not-new = Бесплатный период — для новых пользователей, а у вас уже есть подписка.
trial-off = Сейчас бесплатного периода нет.

plans-title =
    <b>Выберите тариф</b>

    Ваш баланс: { $balance } ₽
plans-days = { $days } { $days ->
    [one] день
    [few] дня
   *[many] дней
}

buy-confirm =
    <b>Подтвердите покупку</b>

    Тариф: { $name } ({ $days } { $days ->
        [one] день
        [few] дня
       *[many] дней
    })
    Цена: { $price } ₽
    Ваш баланс: { $balance } ₽
    Подписка до: { $until }
btn-confirm = ✅ Оплатить { $price } ₽
buy-done =
    ✅ Оплачено { $price } ₽ за { $name }.

    Подписка до: { $until }
    Баланс: { $balance } ₽
buy-already-done = Эта покупка уже оплачена.
buy-insufficient =
    <b>Недостаточно средств</b>

    Цена: { $price } ₽
    Ваш баланс: { $balance } ₽
    Не хватает: { $missing } ₽
btn-topup = 💰 Пополнить на { $missing } ₽
buy-price-changed = Цена изменилась; проверьте новую.
buy-unknown-plan = Такого тарифа нет.
