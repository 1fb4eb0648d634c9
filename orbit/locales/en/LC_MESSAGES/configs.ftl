# 🔑 My configs: the list, one config, create, rename, delete.

configs-title = <b>🔑 My configs</b> ({ $count } of { $max })
configs-until = 📅 Valid until: { $until }
configs-until-inactive = no active subscription
configs-empty = You have no configs yet. Create one, then import its link into a VPN app (see ❓ Help).
configs-item =
    { $index }. <b>{ $name }</b> — { $status }
        traffic: { $traffic }

configs-status-active = ✅ active
configs-status-pending = ⏳ being set up
configs-status-disabled = ⏸ disabled
configs-status-limited = 🚫 traffic limit reached
configs-status-expired = ⌛ expired
configs-status-on_hold = ⏳ on hold
configs-status-unknown = ❔ server not answering

configs-traffic = { $used } of { $limit }
configs-traffic-unlimited = { $used }, no limit
configs-traffic-unknown = unknown
configs-traffic-not-read = not read yet
# A usage stored earlier, with its age: "1.2 GB of 50 GB · 5 min ago".
configs-traffic-as-of = { $traffic } · { $age }
configs-read-now = just now
configs-read-minutes-ago = { $minutes } min ago
configs-read-hours-ago = { $hours } h ago
configs-read-at = as of { $at }
configs-size = { $value } { $unit ->
    [kb] KB
    [mb] MB
    [gb] GB
    [tb] TB
   *[b] B
}

configs-detail =
    <b>{ $name }</b>

    Status: { $status }
    Valid until: { $until }
    Traffic used: { $traffic }
configs-link =
    Subscription link (tap to copy, then import it into your VPN app, or scan the QR code):
    <code>{ $url }</code>
configs-link-pending = The link appears here once the config is set up.

btn-config-new = ➕ New config
btn-config-qr = 📷 QR code
btn-config-rename = ✏️ Rename
btn-config-delete = 🗑 Delete
btn-config-delete-yes = 🗑 Yes, delete it
btn-config-cancel = ✖️ Cancel
btn-configs-back = « My configs

configs-creating = ⏳ Creating your config…
configs-created = ✅ Config «{ $name }» is ready.
configs-create-failed = ❌ No VPN server answered, so the config was not created. Please try again in a few minutes.
configs-create-stale = This button was out of date: a config from your earlier press is already there. Open 🔑 My configs to see it.
configs-no-subscription = You need an active subscription for configs: take the free trial or buy a plan.
configs-limit-reached = Your plan allows { $limit } configs and you have them all. Delete one to create another.
configs-not-found = This config is not in your list (it may have been deleted).
configs-not-ready = This config is still being set up. Try again in a minute.
configs-error = Something went wrong with your configs. Please try again.

configs-qr-caption = QR code of «{ $name }»: scan it in your VPN app.

configs-rename-prompt =
    Send a new name for «{ $name }».

    Up to { $max } characters: letters, digits, spaces and - _ . , ( ) # + ! '
configs-name-invalid = This name does not fit: use 1 to { $max } letters, digits, spaces and - _ . , ( ) # + ! ' — send another name, or /cancel.
configs-rename-cancelled = Renaming cancelled.
configs-renamed = ✏️ Renamed to «{ $name }».

configs-delete-confirm =
    Delete «{ $name }»?

    VPN apps using it stop working at once. This cannot be undone.
configs-deleted = 🗑 Config «{ $name }» deleted.
