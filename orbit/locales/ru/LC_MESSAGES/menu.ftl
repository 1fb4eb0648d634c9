# /start, главное меню, помощь, настройки, рефералы, ограничения частоты, проверка канала.

cmd-start = Начать и открыть меню
cmd-menu = Главное меню
cmd-help = Как подключиться

start-welcome = Добро пожаловать в Orbit VPN, { $name }!
start-welcome-back = С возвращением, { $name }!
start-first = Сначала нажмите /start.

menu-title = <b>Orbit VPN</b>
menu-status-active = 📅 Подписка: активна до { $until }
menu-status-trial = 📅 Подписка: бесплатный период до { $until }
menu-status-expired = 📅 Подписка: закончилась { $until }
menu-status-none = 📅 Подписка: пока нет
menu-balance = 💰 Баланс: { $balance } ₽
menu-trial-offer = 🎁 Попробуйте Orbit бесплатно: { $days } { $days ->
    [one] день
    [few] дня
   *[many] дней
}.

btn-trial = 🎁 Бесплатный период
btn-sub = 📅 Подписка
btn-buy = 🛒 Купить тариф
btn-configs = 🔑 Мои конфиги
btn-balance = 💰 Баланс
btn-ref = 👥 Пригласить друзей
btn-promo = 🎟 Промокод
btn-settings = ⚙️ Настройки
btn-help = ❓ Помощь
btn-menu = « Меню
btn-back = « Назад

help-text =
    <b>Как подключиться</b>

    1. Оформите подписку: бесплатный период или тариф (🛒 Купить тариф).
    2. Откройте 🔑 Мои конфиги и создайте конфиг.
    3. Установите приложение и импортируйте ссылку подписки конфига (или отсканируйте QR-код).

    <b>Приложения</b>
    • Android: <a href="https://github.com/2dust/v2rayNG/releases">v2rayNG</a>, <a href="https://hiddify.com">Hiddify</a>
    • iPhone, iPad: Streisand, V2Box (App Store), <a href="https://hiddify.com">Hiddify</a>
    • Windows: <a href="https://hiddify.com">Hiddify</a>, <a href="https://github.com/2dust/v2rayN/releases">v2rayN</a>
    • macOS: <a href="https://hiddify.com">Hiddify</a>, V2Box (App Store)
    • Linux: <a href="https://hiddify.com">Hiddify</a>

    Вопросы? Пишите { $support }.

settings-text =
    <b>Настройки</b>

    Язык: { $language }
settings-saved = Язык сохранён.
language-name-en = English 🇬🇧
language-name-ru = Русский 🇷🇺

ref-text =
    <b>Пригласите друзей</b>

    Поделитесь ссылкой. Когда приглашённый друг впервые пополнит баланс, вы получите { $bonus } ₽.

    Ваша ссылка: { $link }

    Приглашено: { $invited }
    Выплачено бонусов: { $paid }
    Заработано: { $earned } ₽

rate-limited = Слишком часто. Попробуйте через { $seconds } с.

gate-text =
    Чтобы получить бесплатный период или купить тариф, сначала подпишитесь на канал { $channel }, затем нажмите «Я подписался».
gate-btn-join = 📢 Открыть канал
gate-btn-check = ✅ Я подписался
gate-not-member = Вы ещё не подписались на { $channel }.
