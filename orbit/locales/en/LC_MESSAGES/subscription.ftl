# The subscription screen, the free trial, plans and purchases.

plan-name = { $months ->
    [one] { $months } month
   *[other] { $months } months
}
plan-button = { $name } — { $price } ₽

sub-title = <b>Subscription</b>
sub-active = Active until { $until }.
sub-trial = Free trial until { $until }.
sub-expired = Expired on { $until }.
sub-none = You have no subscription yet.
sub-plan = Plan: { $name }.
sub-auto-renew-on = Auto-renewal: on. A day before the subscription ends, the same plan is bought again from your balance if it holds enough. After the end nothing is bought without your press.
sub-auto-renew-on-no-plan = Auto-renewal: on. A trial is not renewed and nothing is bought now; once you buy a plan, it is bought again from your balance a day before it ends.
sub-auto-renew-off = Auto-renewal: off.
btn-auto-renew-off = 🔁 Turn auto-renewal off
btn-auto-renew-on = 🔁 Turn auto-renewal on
btn-extend = 🛒 Extend
auto-renew-saved-on = Auto-renewal is on.
auto-renew-saved-off = Auto-renewal is off.

trial-started = 🎁 Your free trial runs until { $until }. Create a config in 🔑 My configs to connect.
trial-used = You have already used your free trial.
trial-not-new = The free trial is for new users: you already have a subscription.
trial-off = There is no free trial at the moment.

plans-title =
    <b>Choose a plan</b>

    Your balance: { $balance } ₽
plans-days = { $days ->
    [one] { $days } day
   *[other] { $days } days
}

buy-confirm =
    <b>Confirm the purchase</b>

    Plan: { $name } ({ $days ->
        [one] { $days } day
       *[other] { $days } days
    })
    Price: { $price } ₽
    Your balance: { $balance } ₽
    Subscription until: { $until }
buy-auto-renew-note = 🔁 Auto-renewal is on: a day before the subscription ends, this plan is bought again from your balance. Switch it off in 📅 Subscription.
btn-confirm = ✅ Pay { $price } ₽
buy-done =
    ✅ Paid { $price } ₽ for { $name }.

    Subscription until: { $until }
    Balance: { $balance } ₽
buy-already-done = This purchase is already done.
buy-insufficient =
    <b>Not enough money</b>

    Price: { $price } ₽
    Your balance: { $balance } ₽
    Missing: { $missing } ₽
btn-topup = 💰 Top up { $missing } ₽
buy-price-changed = The price has changed; check the new one.
buy-unknown-plan = There is no such plan.
