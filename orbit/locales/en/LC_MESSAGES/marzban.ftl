# VPN panels (Marzban): what a user sees when a panel fails, and when a config moves.
marzban-error = Something went wrong on the VPN server. Please try again in a few minutes.
marzban-panel-unavailable = The VPN server is not answering right now. Please try again in a few minutes.
marzban-panel-rejected = The VPN server refused this request. Please try again later or contact support.
marzban-user-not-found = This config is missing on the VPN server. Please contact support.
marzban-no-instance = No VPN server can take new configs right now. Please try again later.
marzban-config-not-found = This config no longer exists.
marzban-config-moved =
    Your config «{ $name }» has moved to another server.
    Update it in your app with the new link:
    { $url }
