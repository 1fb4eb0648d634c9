# The payments core: refusals and the notifications it queues (outbox).
payment-error = The payment could not be processed. Please try again or contact support.
payment-amount-invalid = Send the amount in roubles as a number, for example 300 or 149.50.
payment-amount-out-of-range = The amount must be from { $min } ₽ to { $max } ₽.
payment-method-unavailable = This payment method is not available right now. Please choose another one.
payment-not-found = This payment was not found.
payment-not-confirmable = This payment cannot be changed any more.

payment-confirmed = ✅ Payment received: +{ $credited } ₽. Balance: { $balance } ₽.
payment-confirmed-underpaid =
    ✅ Payment received, but less than expected: { $credited } ₽ of { $expected } ₽ credited.
    Balance: { $balance } ₽.
payment-confirmed-overpaid =
    ✅ Payment received, more than expected: { $credited } ₽ credited instead of { $expected } ₽.
    Balance: { $balance } ₽.
payment-confirmed-late-note = The payment arrived after it had expired; it was credited at the rate fixed when it was created.
payment-extra-transfer =
    ✅ Another transfer with the comment of a paid top-up arrived: +{ $credited } ₽.
    Balance: { $balance } ₽.
payment-ton-matched-by-support = ✅ Support found your TON transfer: +{ $credited } ₽. Balance: { $balance } ₽.
payment-referral-bonus = 🎁 A friend you invited topped up their balance: +{ $amount } ₽. Balance: { $balance } ₽.
payment-refunded = ↩️ Your payment was refunded: −{ $amount } ₽. Balance: { $balance } ₽.
