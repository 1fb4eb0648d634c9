# TON payments: notes the watcher adds to a payment's confirmation.
ton-late-rate-note = Перевод пришёл более чем через { $grace } мин после истечения срока счёта, поэтому он зачислен по меньшему из двух курсов: зафиксированному при создании счёта и действовавшему в момент поступления ({ $rate } ₽ за TON).
