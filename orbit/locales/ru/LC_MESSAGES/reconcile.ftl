# Сверка с записями Telegram и Crypto Pay (orbit/payments/reconcile.py).
reconcile-issue = ⚠️ Сверка не смогла исправить это сама ({ $source } { $subject }): { $what }
    Открытые вопросы: <code>orbit reconcile --issues</code>
reconcile-what-charge-unmatched = платёж на { $amount } ⭐ от пользователя { $user } не относится ни к одному его счёту (payload { $payload }). Зачислите или верните его вручную.
reconcile-what-refund-uncovered = платёж вернули в обход бота, но пользователь { $user } уже потратил зачисленные { $amount } ₽.
reconcile-what-refund-refused = Telegram отказался вернуть звёзды ({ $error }) по возврату, уже списанному у пользователя { $user } ({ $amount } ₽).
reconcile-what-invoice-unmatched = оплаченный счёт на { $amount } не относится ни к одному нашему платежу (payload { $payload }).
refund-unconfirmed = ⏳ Платёж { $id }: −{ $amount } ₽ списано у пользователя { $user }, но Telegram не ответил. Возврат помечен неподтверждённым; сверка его завершит.
