# 🛠 The admin panel (ADMIN_IDS only), and what a banned user is told.

banned-text = Sorry, your access to this bot has been restricted. If you think this is a mistake, write to { $support }.

admin-title = 🛠 <b>Admin panel</b>
btn-admin-stats = 📊 Stats
btn-admin-health = 🩺 Health
btn-admin-user = 👤 Find a user
btn-admin-promos = 🎟 Promo codes
btn-admin-instances = 🖥 Instances
btn-admin-broadcast = 📣 Broadcast
btn-admin-back = « Admin panel
btn-admin-refresh = 🔄 Refresh
btn-admin-cancel = ✖️ Cancel
btn-admin-confirm = ✅ Confirm
admin-cancelled = Cancelled.
admin-text-only = Send text, or press Cancel.
admin-confirm-stale = This confirmation is out of date. Start again.
admin-confirm-pending = Press a button above: confirm, or cancel.
admin-none = —

# 📊 Stats
admin-stats-title = 📊 <b>Stats</b> as of { $at }
admin-stats-users = 👥 Users: { $total } (new today: { $new }) · subscribed: { $active } · blocked the bot: { $blocked } · banned: { $banned }
admin-stats-revenue = 💰 <b>Revenue, ₽</b>: today / 7 days / 30 days / all time
admin-stats-row = { $name }: { $today } / { $week } / { $month } / { $total }
admin-source-purchases = Plans bought
admin-source-all = All top-ups
admin-source-ton = Top-ups, TON
admin-source-stars = Top-ups, Stars
admin-source-cryptobot = Top-ups, CryptoBot
admin-stats-pending = ⏳ Pending payments: { $count } ({ $amount } ₽)
admin-stats-unmatched = ❓ Unmatched TON transfers: { $count }

# 🩺 Health
admin-health-title = 🩺 <b>Health</b>
admin-health-deps = Postgres: { $postgres } · Redis: { $redis } · schema: { $schema } (expected { $expected })
admin-health-worker = { $mark } { $name }: heartbeat { $age } · pid { $pid } · supervisor: { $state }
admin-health-age = { $seconds } s ago
admin-health-missing = missing
admin-health-ok = ✅ All healthy
admin-health-bad = ⚠️ Something is down

# 👤 Users
admin-user-prompt = 👤 Send a Telegram id or @username.
admin-user-head = 👤 <b>{ $name }</b> · id <code>{ $id }</code> · { $username }
admin-user-meta = Language: { $language } · joined { $joined } · last seen { $seen }
admin-user-balance = 💰 Balance: <b>{ $balance } ₽</b>
admin-user-sub-active = 📅 Subscribed until { $until } · plan: { $plan } · auto-renewal: { $renew }
admin-user-sub-expired = 📅 Subscription ended { $until }
admin-user-sub-none = 📅 No subscription
admin-user-banned = 🚫 Banned
admin-user-blocked = 🔕 Blocked the bot on { $at }
admin-user-configs = 🔑 Configs: { $count }
admin-user-config = • { $name } — { $instance }, { $status }
admin-user-payments = 💳 Last payments:
admin-user-payment = • #{ $id } { $method } { $amount } ₽ — { $status }, { $at }
admin-user-ledger = 📒 Ledger:
admin-user-entry = • { $amount } ₽ { $kind } → { $after } ₽, { $at } { $note }
admin-yes = on
admin-no = off
btn-admin-adjust = 💰 Adjust balance
btn-admin-ban = 🚫 Ban
btn-admin-unban = ✅ Unban
btn-admin-user-refresh = 🔄 Refresh
admin-banned-done = 🚫 User { $id } is banned.
admin-unbanned-done = ✅ User { $id } is unbanned.

# 💰 Balance adjustment
admin-adjust-prompt = 💰 Balance of { $id }: { $balance } ₽. Send the amount in ₽: <code>+100</code> adds, <code>-50</code> takes.
admin-adjust-reason-prompt = Adjust by { $amount } ₽. Why? Send a short reason: it goes into the ledger.
admin-adjust-confirm =
    Adjust the balance of { $id } by <b>{ $amount } ₽</b>?
    Reason: { $reason }
admin-adjust-done = ✅ Balance of { $id } adjusted by { $amount } ₽. Balance now: { $balance } ₽.
admin-adjust-replayed = This adjustment was already made. Balance of { $id }: { $balance } ₽.
btn-admin-open-user = 👤 Open user { $id }

# Refusals (orbit/admin/errors.py)
admin-error = ❌ That did not work. Try again.
admin-amount-invalid = ❌ Send an amount in ₽ like <code>100</code>, <code>-50</code> or <code>99.50</code>.
admin-amount-zero = ❌ The amount must not be zero.
admin-amount-too-large = ❌ That is more than { $limit } ₽. A typo?
admin-user-ref-invalid = ❌ Send a Telegram id (digits) or an @username.
admin-user-not-found = ❌ No user { $user }.
admin-reason-empty = ❌ Send a reason (up to { $limit } characters).
admin-adjust-negative = ❌ Refused: the balance is { $balance } ₽, { $needed } ₽ cannot be taken.
admin-ban-admin = ❌ An admin cannot be banned.
admin-broadcast-empty = ❌ The text is empty.
admin-broadcast-too-long = ❌ The text has { $length } characters; Telegram takes at most { $limit }.
admin-broadcast-not-found = ❌ No broadcast #{ $id }.
admin-promo-line-invalid = ❌ { $reason }

# 🎟 Promo codes
admin-promos-title = 🎟 <b>Promo codes</b> (usable)
admin-promos-empty = No usable promo codes.
admin-promo-line = • <code>{ $code }</code> — { $value } · used { $uses }{ $expires }
admin-promo-value-balance = { $amount } ₽
admin-promo-value-days = { $days ->
    [one] { $days } day
   *[other] { $days } days
}
admin-promo-expires = {" "}· until { $at }
btn-admin-promo-new = ➕ New code
btn-admin-promo-off = ⏸ { $code }
admin-promo-prompt = Send the new code: <code>CODE balance 100 [MAX_USES]</code> or <code>CODE days 30 [MAX_USES]</code>.
admin-promo-created = ✅ Promo code <code>{ $code }</code> created.
admin-promo-disabled = ⏸ Promo code { $code } disabled.
admin-promo-refused = ❌ Not created: { $reason }

# 🖥 Instances
admin-instances-title = 🖥 <b>Instances</b>
admin-instances-empty = No instances registered (<code>orbit instances add</code>).
admin-instance-line = { $mark } <b>{ $id }</b> ({ $name }) — { $state } · priority { $priority } · configs: { $configs } · { $health }
admin-instance-active = active
admin-instance-inactive = disabled
admin-instance-up = up, { $usable }/{ $total } nodes
admin-instance-down = DOWN: { $error }
admin-instance-health-unknown = health unknown
admin-instance-stale = (stale)
btn-admin-inst-enable = ▶️ Enable { $id }
btn-admin-inst-disable = ⏸ Disable { $id }
btn-admin-inst-drain = 🚚 Drain { $id }
admin-instance-enabled = ▶️ Instance { $id } enabled: new configs may go to it.
admin-instance-disabled = ⏸ Instance { $id } disabled: no new configs go to it; its { $configs } configs stay.
admin-instance-not-found = ❌ No instance { $id }.
admin-drain-confirm = 🚚 Move all { $configs } configs of { $id } to other instances? It is disabled first; each user gets their new link.
admin-drain-running = 🚚 Drain of { $id } queued: its progress and report show here.
admin-drain-done = 🚚 Drain of { $id }: { $moved } moved, { $deleted } deleted, { $skipped } already elsewhere, { $failed } failed.
admin-drain-incomplete = Some configs were not moved: drain again to retry them.
admin-drain-refused = ❌ Drain of { $id } refused: { $reason }

# 📣 Broadcasts
admin-broadcast-prompt = 📣 Send the broadcast text (formatting is kept). It goes to { $count } users ({ $audience }).
admin-broadcast-preview = ⬆️ This is how it looks. Send it to { $count } users ({ $audience })?
btn-admin-broadcast-send = 📣 Send
admin-broadcast-queued = ✅ Broadcast #{ $id } queued: { $count } messages.
admin-broadcast-replayed = Broadcast #{ $id } was already queued: { $count } messages.
btn-admin-broadcast-progress = 🔄 Progress
admin-broadcast-progress = 📣 Broadcast #{ $id }: { $total } recipients — sent { $sent }, pending { $pending }, failed { $failed }, skipped { $skipped }.
admin-broadcast-queuing = ⏳ Still being queued.

## Broadcasts: audience, button, cancel (bcast)
admin-audience-all = everyone reachable
admin-audience-active = active subscribers
admin-audience-expired = expired subscriptions
admin-audience-trial = trial only
admin-audience-never-paid = never paid
admin-audience-with-language = { $audience }, language { $language }
btn-admin-audience = { $name }: { $count }
btn-admin-language-any = 🌐 any language
btn-admin-language-en = 🇬🇧 en
btn-admin-language-ru = 🇷🇺 ru
admin-broadcast-audience = 📣 Who gets the broadcast? (users who blocked the bot or are banned never do; language: { $language })
admin-broadcast-button-prompt = 🔘 Add a button? Send <code>TEXT=https://…</code> for a link, or <code>TEXT=screen</code> to open one of the bot's screens ({ $screens }).
btn-admin-broadcast-no-button = ➡️ No button
btn-admin-broadcast-cancel = ⏹ Stop it
admin-broadcast-audience-line = 👥 { $audience }
admin-broadcast-cancelled = ⏹ Stopped: { $count } messages not sent.
admin-broadcast-finished = ✅ Finished.
admin-broadcast-cancel-done = ⏹ Broadcast #{ $id } stopped: { $count } messages will not be sent.
admin-broadcast-cancel-again = Broadcast #{ $id } was already stopped.
admin-broadcast-audience-invalid = ❌ Unknown audience or language: { $value }.
admin-broadcast-button-invalid = ❌ Not a button: { $reason }.
admin-drain-progress = 🚚 Draining { $id }: { $line }

## Maintenance mode (bcast)
maintenance-text = 🛠 The bot is under maintenance for a short while. Payments you make still arrive; everything else is back soon. Thank you for your patience!
btn-admin-maintenance = 🛠 Maintenance
admin-maintenance-off = 🛠 Maintenance mode is off: everyone uses the bot.
admin-maintenance-on = 🛠 Maintenance mode is ON since { $since } (by { $by }). Users get this once, payments go on, admins use everything:
btn-admin-maintenance-on = 🔧 Switch on
btn-admin-maintenance-off = ✅ Switch off
btn-admin-maintenance-default = 💬 Use the default message
admin-maintenance-prompt = 🛠 Send the message users will get (once each), or use the default:
    { $default }
admin-maintenance-switched-on = 🔧 Maintenance mode switched on.
admin-maintenance-switched-off = ✅ Maintenance mode switched off.

## Statistics: growth, trials, churn, instances (bcast)
admin-stats-new = 🆕 New users: { $day } (1 day) · { $week } (7 days) · { $month } (30 days)
admin-stats-trials = 🎁 Trials started: { $day } · { $week } · { $month }
admin-stats-conversion = 💳 Trial to paid: { $converted } of { $trials } ({ $share })
admin-stats-by-plan = 📦 Active by plan: { $plans }
admin-stats-churn = 📉 Ended, not renewed: { $week } (7 days) · { $month } (30 days)
admin-stats-instances = 🖥 Instances (configs · panel users · nodes · best score):
admin-stats-instance = • { $id }: { $configs } · { $users } · { $usable }/{ $total } · { $score } ({ $status })

## Instances: node scores, exclude/include, refresh (bcast)
admin-instance-scores = ⚖️ Scores (lowest wins): { $scores }
admin-instance-excluded = ⛔ Excluded nodes: { $nodes }
btn-admin-node-exclude = ⛔ Exclude a node of { $id }
btn-admin-node-include = ✅ Include { $node }
btn-admin-balancer-poke = ⚖️ Ask the balancer now
admin-balancer-poked = ⚖️ The balancer scores every instance now; refresh in a few seconds.
admin-node-prompt = ⛔ Send the name of the node of { $id } to exclude (as the panel shows it).
admin-node-excluded = ⛔ { $id }: excluded nodes now { $nodes }.
admin-node-included = ✅ { $id }: node { $node } is scored again.
admin-node-invalid = ❌ No such node to change: { $node }.
