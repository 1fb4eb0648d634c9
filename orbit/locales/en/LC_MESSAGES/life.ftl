# A subscription's life on the panels: expiry, grace, traffic (orbit/subscriptions/).
life-config-revived =
    🔑 Your subscription is back. Your config «{ $name }» was removed from its server after the grace period, so it was made again with a new link.
    Import it into your VPN app:
    { $url }
life-traffic-90 = 📶 Config «{ $name }» has used 90% of its traffic: { $used } of { $limit } GB. Buy a plan to keep going when it runs out, or check your usage in 🔑 My configs.
life-traffic-100 = 🚫 Config «{ $name }» has used all of its traffic ({ $limit } GB) and is paused until the traffic resets or you buy a plan.
life-usage-button = 📊 My configs and usage
