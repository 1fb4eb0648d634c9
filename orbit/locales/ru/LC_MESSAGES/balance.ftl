# Balance screen and top-ups (orbit/bot/routers/balance.py, stars.py).
balance-title = 💰 <b>Баланс: { $balance } ₽</b>
balance-history-title = Последние операции:
balance-history-empty = Операций пока нет.
balance-entry = { $amount } ₽ · { $kind } · { $date }
ledger-kind-topup = пополнение
ledger-kind-purchase = покупка
ledger-kind-promo = промокод
ledger-kind-referral_bonus = реферальный бонус
ledger-kind-refund = возврат
ledger-kind-adjustment = корректировка
btn-topup-start = ➕ Пополнить

topup-choose-amount = На сколько пополнить баланс? От { $min } ₽ до { $max } ₽.
btn-topup-amount = { $amount } ₽
btn-topup-custom = ✏️ Другая сумма
topup-enter-amount =
    Отправьте сумму в рублях, от { $min } ₽ до { $max } ₽, например 300 или 149.50.
    /cancel — отмена.
btn-topup-cancel = ✖️ Отмена
topup-cancelled = Пополнение отменено.
topup-choose-method = Пополнение на <b>{ $amount } ₽</b>. Выберите способ оплаты:
btn-method-ton = 💎 TON
btn-method-stars = ⭐ Telegram Stars ({ $stars } ⭐)
btn-method-cryptobot = 🤖 CryptoBot (USDT, TON, BTC…)
topup-already-paid = ✅ Этот платёж уже получен.

topup-ton =
    💎 <b>Пополнение через TON: { $amount } ₽</b>

    Отправьте ровно <code>{ $ton }</code> TON
    на адрес <code>{ $address }</code>
    с комментарием <code>{ $comment }</code>

    Без комментария перевод не удастся сопоставить с вами.
    Ссылка для кошелька: { $link }
    Курс: 1 TON = { $rate } ₽. Оплатите до { $until }; перевод, пришедший намного позже, зачисляется по меньшему из этого курса и курса на тот момент.
btn-ton-paid = ✅ Я оплатил
ton-checking = Проверяем блокчейн… Вы получите сообщение, как только перевод поступит.

stars-invoice-title = Пополнение { $amount } ₽
stars-invoice-description = { $amount } ₽ на баланс Orbit VPN за { $stars } ⭐.
stars-invoice-label = Пополнение { $amount } ₽
stars-refused-unknown = Этот счёт неизвестен. Начните новое пополнение в боте.
stars-refused-expired = Срок действия счёта истёк. Начните новое пополнение в боте.
stars-refused-paid = Этот счёт уже оплачен.
stars-refused-mismatch = Счёт не совпадает с платежом. Начните новое пополнение в боте.
stars-payment-unmatched = Мы получили ваши звёзды, но не смогли сопоставить их с пополнением. Поддержка уже знает и во всём разберётся.
stars-refund-not-stars = Так можно вернуть только платежи в Telegram Stars.

topup-cryptobot =
    🤖 <b>Пополнение через CryptoBot: { $amount } ₽</b>

    Оплатите счёт в CryptoBot в USDT, TON, BTC или другой монете.
    Баланс пополнится автоматически; если это долго, нажмите «Проверить оплату».
    Счёт действителен до { $until }.
btn-cryptobot-pay = 💳 Оплатить в CryptoBot
btn-cryptobot-check = 🔄 Проверить оплату
cryptobot-check-confirmed = ✅ Оплата получена!
cryptobot-check-pending = Оплата ещё не поступила. Если вы уже оплатили, проверьте через минуту.
cryptobot-check-expired = Срок действия счёта истёк. Начните новое пополнение.
cryptobot-description = Пополнение баланса Orbit VPN
cryptobot-unavailable = CryptoBot сейчас не отвечает. Попробуйте через минуту или выберите другой способ.

refund-usage = Использование: /refund &lt;id платежа&gt;
refund-done = ↩️ Платёж { $id } возвращён: −{ $amount } ₽ у пользователя { $user }, звёзды возвращены.
refund-already = Платёж { $id } уже был возвращён (−{ $amount } ₽ у пользователя { $user }).
refund-spent = Платёж { $id } нельзя вернуть: пользователь уже потратил деньги (баланс { $balance } ₽, нужно { $needed } ₽).
refund-telegram-failed = Telegram отказал в возврате, ничего не изменилось: { $error }

topup-expired-alert = ⌛ Срок действия этого счёта истёк.
topup-ton-expired =
    ⌛ <b>Срок действия счёта TON на { $amount } ₽ истёк.</b>

    Если вы уже отправили перевод, он всё равно будет зачислен, когда поступит (по меньшему из курсов: счёта и на момент поступления). Иначе начните новое пополнение.
topup-cryptobot-expired =
    ⌛ <b>Срок действия счёта CryptoBot на { $amount } ₽ истёк.</b>

    Чтобы оплатить, начните новое пополнение.
