# VPN panels (Marzban): a config's panel user was made again, so its old link is dead.
marzban-link-changed =
    Your config «{ $name }» was set up again on its server, so its old link no longer works.
    Update it in your app with the new link:
    { $url }
