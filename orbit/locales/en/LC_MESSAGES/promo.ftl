# 🎟 Promo codes.

promo-prompt = 🎟 Send your promo code as a message.
btn-promo-cancel = ✖️ Cancel
promo-cancelled = Promo code entry cancelled.
promo-text-only = Send the promo code as text, or press Cancel.

promo-applied-balance = ✅ Promo code { $code } applied: +{ $amount } ₽ to your balance. Balance: { $balance } ₽.
promo-applied-days = ✅ Promo code { $code } applied: +{ $days ->
    [one] { $days } day
   *[other] { $days } days
} of subscription. Active until { $until }.

promo-not-found = There is no such promo code. Check it and send it again, or press Cancel.
promo-inactive = This promo code has been switched off.
promo-expired = This promo code has expired.
promo-exhausted = This promo code has run out: all its activations are taken.
promo-already-used = You have already used this promo code.
promo-error = This promo code cannot be used. Please try again later.
