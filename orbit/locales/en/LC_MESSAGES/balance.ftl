# Balance screen and top-ups (orbit/bot/routers/balance.py, stars.py).
balance-title = 💰 <b>Balance: { $balance } ₽</b>
balance-history-title = Recent operations:
balance-history-empty = No operations yet.
balance-entry = { $amount } ₽ · { $kind } · { $date }
ledger-kind-topup = top-up
ledger-kind-purchase = purchase
ledger-kind-promo = promo code
ledger-kind-referral_bonus = referral bonus
ledger-kind-refund = refund
ledger-kind-adjustment = correction
btn-topup-start = ➕ Top up

topup-choose-amount = How much would you like to top up? From { $min } ₽ to { $max } ₽.
btn-topup-amount = { $amount } ₽
btn-topup-custom = ✏️ Another amount
topup-enter-amount =
    Send the amount in roubles, from { $min } ₽ to { $max } ₽, for example 300 or 149.50.
    /cancel to stop.
btn-topup-cancel = ✖️ Cancel
topup-cancelled = Top-up cancelled.
topup-choose-method = Top up by <b>{ $amount } ₽</b>. Choose a payment method:
btn-method-ton = 💎 TON
btn-method-stars = ⭐ Telegram Stars ({ $stars } ⭐)
btn-method-cryptobot = 🤖 CryptoBot (USDT, TON, BTC…)
topup-already-paid = ✅ This payment has already been received.

topup-ton =
    💎 <b>Top-up by TON: { $amount } ₽</b>

    Send exactly <code>{ $ton }</code> TON
    to <code>{ $address }</code>
    with the comment <code>{ $comment }</code>

    Without the comment the transfer cannot be matched to you.
    Wallet link: { $link }
    Rate: 1 TON = { $rate } ₽. Pay by { $until }; a transfer that arrives much later is credited at the lower of this rate and the rate then.
btn-ton-paid = ✅ I paid
ton-checking = Checking the blockchain… You will get a message as soon as the transfer arrives.

stars-invoice-title = Top-up { $amount } ₽
stars-invoice-description = { $amount } ₽ to your Orbit VPN balance for { $stars } ⭐.
stars-invoice-label = Top-up { $amount } ₽
stars-refused-unknown = This invoice is unknown. Please start a new top-up in the bot.
stars-refused-expired = This invoice has expired. Please start a new top-up in the bot.
stars-refused-paid = This invoice has already been paid.
stars-refused-mismatch = This invoice does not match its payment. Please start a new top-up in the bot.
stars-payment-unmatched = We received your Stars but could not match them to a top-up. Support has been notified and will sort it out.
stars-refund-not-stars = Only Telegram Stars payments can be refunded this way.

topup-cryptobot =
    🤖 <b>Top-up via CryptoBot: { $amount } ₽</b>

    Pay the invoice in CryptoBot with USDT, TON, BTC or another coin.
    The balance is credited automatically; if it takes long, press “Check payment”.
    The invoice is valid until { $until }.
btn-cryptobot-pay = 💳 Pay in CryptoBot
btn-cryptobot-check = 🔄 Check payment
cryptobot-check-confirmed = ✅ Payment received!
cryptobot-check-pending = The payment has not arrived yet. If you have paid, try again in a minute.
cryptobot-check-expired = This invoice has expired. Please start a new top-up.
cryptobot-description = Orbit VPN balance top-up
cryptobot-unavailable = CryptoBot is not responding right now. Please try again in a minute or choose another method.

refund-usage = Usage: /refund &lt;payment id&gt;
refund-done = ↩️ Payment { $id } refunded: −{ $amount } ₽ from user { $user }, the Stars returned.
refund-already = Payment { $id } was already refunded (−{ $amount } ₽ from user { $user }).
refund-spent = Payment { $id } cannot be refunded: the user has spent the money (balance { $balance } ₽, needed { $needed } ₽).
refund-telegram-failed = Telegram refused the refund, nothing changed: { $error }

topup-expired-alert = ⌛ This invoice has expired.
topup-ton-expired =
    ⌛ <b>This TON invoice for { $amount } ₽ has expired.</b>

    If you have already sent the transfer, it is still credited when it arrives (at the lower of the invoice's rate and the rate then). Otherwise start a new top-up.
topup-cryptobot-expired =
    ⌛ <b>This CryptoBot invoice for { $amount } ₽ has expired.</b>

    Start a new top-up to pay.
