# TON payments: notes the watcher adds to a payment's confirmation.
ton-late-rate-note = The transfer arrived more than { $grace } min after the payment had expired, so it was credited at the lower of two rates: the one fixed when the payment was created and the one when it arrived ({ $rate } ₽ per TON).
