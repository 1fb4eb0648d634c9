# Access and abuse: where the bot talks, and what one user may make it do (docs/RELIABILITY.md).
private-only = I only work in a private chat: open me from my profile and press Start.

# Budgets: what one user may make the VPN servers and the payment services do.
configs-daily-cap = You have created { $limit } configs in the last 24 hours, the most a day allows. You can create another one tomorrow.
payment-too-many-pending = You already have { $limit } unpaid invoices. Pay one of them, or wait until they expire (in { $minutes } minutes at most), then create a new one.
rate-limited-config_create = Configs can be created a few in a row, then one a minute. Try again in { $seconds } s.
rate-limited-config_delete = Configs can be deleted a few in a row, then one every 20 seconds. Try again in { $seconds } s.
rate-limited-panel_read = The VPN servers are asked for your traffic a few times in a row, then once every few seconds. Try again in { $seconds } s.
rate-limited-qr = QR codes can be made a few in a row, then one every 10 seconds. Try again in { $seconds } s.
