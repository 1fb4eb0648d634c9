# Notifications written by the janitor (delivered through the outbox).
janitor-buy-button = 🛒 Renew
janitor-reminder-3d = ⏳ Your Orbit subscription ends on { $until }. Renew it so your VPN keeps working.
janitor-reminder-1d = ⚠️ Your Orbit subscription ends tomorrow ({ $until }). Renew it now to stay connected.
janitor-reminder-expired = ❌ Your Orbit subscription ended on { $until }. Your configs are paused until you renew.
janitor-renewed = 🔄 Your subscription was renewed automatically for { $plan ->
    [one] 1 month
   *[other] { $plan } months
} from your balance. Active until { $until }.
