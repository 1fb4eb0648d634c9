"""`python -m orbit.bot`: Telegram updates, user flows, the outbox sender, HTTP endpoints."""

from __future__ import annotations

from orbit import runtime
from orbit.bot.process import WORKER


def main() -> None:
    runtime.main(WORKER)


if __name__ == "__main__":
    main()
