# Ядро платежей: отказы и уведомления, которые оно ставит в очередь (outbox).
payment-error = Не удалось обработать платёж. Попробуйте ещё раз или напишите в поддержку.
payment-amount-invalid = Отправьте сумму в рублях числом, например 300 или 149.50.
payment-amount-out-of-range = Сумма должна быть от { $min } ₽ до { $max } ₽.
payment-method-unavailable = Этот способ оплаты сейчас недоступен. Выберите другой.
payment-not-found = Платёж не найден.
payment-not-confirmable = Этот платёж уже нельзя изменить.

payment-confirmed = ✅ Оплата получена: +{ $credited } ₽. Баланс: { $balance } ₽.
payment-confirmed-underpaid =
    ✅ Оплата получена, но меньше ожидаемого: зачислено { $credited } ₽ из { $expected } ₽.
    Баланс: { $balance } ₽.
payment-confirmed-overpaid =
    ✅ Оплата получена, больше ожидаемого: зачислено { $credited } ₽ вместо { $expected } ₽.
    Баланс: { $balance } ₽.
payment-confirmed-late-note = Оплата пришла после истечения срока счёта; она зачислена по курсу, зафиксированному при создании.
payment-extra-transfer =
    ✅ Пришёл ещё один перевод с комментарием уже оплаченного пополнения: +{ $credited } ₽.
    Баланс: { $balance } ₽.
payment-ton-matched-by-support = ✅ Поддержка нашла ваш перевод TON: +{ $credited } ₽. Баланс: { $balance } ₽.
payment-referral-bonus = 🎁 Приглашённый вами друг пополнил баланс: +{ $amount } ₽. Баланс: { $balance } ₽.
payment-refunded = ↩️ Платёж возвращён: −{ $amount } ₽. Баланс: { $balance } ₽.
