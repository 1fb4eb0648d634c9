# /start, the main menu, help, settings, referrals, rate limits, the channel gate.

cmd-start = Start and open the menu
cmd-menu = Main menu
cmd-help = How to connect

start-welcome = Welcome to Orbit VPN, { $name }!
start-welcome-back = Welcome back, { $name }!
start-first = Press /start first.

menu-title = <b>Orbit VPN</b>
menu-status-active = 📅 Subscription: active until { $until }
menu-status-trial = 📅 Subscription: free trial until { $until }
menu-status-expired = 📅 Subscription: expired on { $until }
menu-status-none = 📅 Subscription: none yet
menu-balance = 💰 Balance: { $balance } ₽
menu-trial-offer = 🎁 Try Orbit free for { $days ->
    [one] { $days } day
   *[other] { $days } days
}.

btn-trial = 🎁 Free trial
btn-sub = 📅 Subscription
btn-buy = 🛒 Buy a plan
btn-configs = 🔑 My configs
btn-balance = 💰 Balance
btn-ref = 👥 Invite friends
btn-promo = 🎟 Promo code
btn-settings = ⚙️ Settings
btn-help = ❓ Help
btn-menu = « Menu
btn-back = « Back

help-text =
    <b>How to connect</b>

    1. Get a subscription: a free trial or a plan (🛒 Buy a plan).
    2. Open 🔑 My configs and create a config.
    3. Install an app, then import the config's subscription link (or scan its QR code).

    <b>Apps</b>
    • Android: <a href="https://github.com/2dust/v2rayNG/releases">v2rayNG</a>, <a href="https://hiddify.com">Hiddify</a>
    • iPhone, iPad: Streisand, V2Box (App Store), <a href="https://hiddify.com">Hiddify</a>
    • Windows: <a href="https://hiddify.com">Hiddify</a>, <a href="https://github.com/2dust/v2rayN/releases">v2rayN</a>
    • macOS: <a href="https://hiddify.com">Hiddify</a>, V2Box (App Store)
    • Linux: <a href="https://hiddify.com">Hiddify</a>

    Questions? Write to { $support }.

settings-text =
    <b>Settings</b>

    Language: { $language }
settings-saved = Language saved.
language-name-en = English 🇬🇧
language-name-ru = Русский 🇷🇺

ref-text =
    <b>Invite friends</b>

    Share your link. When a friend you invited tops up the balance for the first time, you get { $bonus } ₽.

    Your link: { $link }

    Invited: { $invited }
    Paid bonuses: { $paid }
    Earned: { $earned } ₽

rate-limited = Too fast. Try again in { $seconds } s.

gate-text =
    To use the free trial or buy a plan, join our channel { $channel } first, then press «I've joined».
gate-btn-join = 📢 Open the channel
gate-btn-check = ✅ I've joined
gate-not-member = You have not joined { $channel } yet.
