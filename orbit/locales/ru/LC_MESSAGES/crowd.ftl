admin-health-unknown = ❔ Состояние неизвестно: supervisord не ответил
