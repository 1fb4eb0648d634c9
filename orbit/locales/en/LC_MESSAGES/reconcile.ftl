# Reconciliation with Telegram's and Crypto Pay's own records (orbit/payments/reconcile.py).
reconcile-issue = ⚠️ Reconciliation could not fix this by itself ({ $source } { $subject }): { $what }
    Open issues: <code>orbit reconcile --issues</code>
reconcile-what-charge-unmatched = a charge of { $amount } ⭐ from user { $user } names no payment of theirs (payload { $payload }). Credit or refund it by hand.
reconcile-what-refund-uncovered = the charge was refunded outside the bot, but user { $user } has already spent the { $amount } ₽ it credited.
reconcile-what-refund-refused = Telegram refused to return the Stars ({ $error }) of a refund already debited from user { $user } ({ $amount } ₽).
reconcile-what-invoice-unmatched = a paid invoice of { $amount } matches no payment of ours (payload { $payload }).
refund-unconfirmed = ⏳ Payment { $id }: −{ $amount } ₽ taken from user { $user }, but Telegram did not answer. The refund is marked unconfirmed; reconciliation settles it.
