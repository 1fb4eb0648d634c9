"""The sandbox's fixed local addresses, printed as env lines for scripts/run.sh.

`python -m orbit.sandbox.config > run/sandbox.env` then the processes see the
emulators exactly as they would see Telegram, Marzban, tonapi and CryptoBot.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

HOST = "127.0.0.1"
TELEGRAM_PORT = 18081
MARZBAN_PORT = 18001  # panel 1 (instance s001); panel n listens on MARZBAN_PORT + n - 1
PANELS = 2
NODES_PER_PANEL = 2
TONAPI_PORT = 18091
CRYPTOBOT_PORT = 18092
BOT_HTTP_PORT = 18080
# The sandbox's chat page (the page engineer serves it here; run.sh prints its address last).
PAGE_PORT = 18000
# The sandbox's own control API: the one clock (docs/sandbox.md).
CONTROL_PORT = 18099

BOT_TOKEN = "100000001:SANDBOX-token"
MARZBAN_USER = "admin"
MARZBAN_PASSWORD = "admin"
CRYPTOBOT_TOKEN = "1234:SANDBOX-cryptobot"
TON_ADDRESS = "0:" + "ab" * 32
SANDBOX_ADMIN_ID = 1000
CRYPTOBOT_WEBHOOK_PATH = "/cryptobot/webhook"
KEY_FILE = Path("run/sandbox.key")  # relative to the repository root, where run.sh runs
STATE_DIR = Path("run/sandbox-state")  # the emulators' state across restarts (state_files.py)


def panel_port(number: int) -> int:
    return MARZBAN_PORT + number - 1


def panel_id(number: int) -> str:
    return f"s{number:03d}"


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether run.sh starts the sandbox: no BOT_TOKEN, or ORBIT_SANDBOX=1 even with one."""
    forced = environ.get("ORBIT_SANDBOX", "").strip().lower() in ("1", "true", "yes", "on")
    return forced or not environ.get("BOT_TOKEN", "").strip()


def password_key(path: Path = KEY_FILE) -> str:
    """The sandbox's MARZBAN_PASSWORD_KEY: made once, kept (0600) next to sandbox.env,
    since the sandbox database keeps the panel password it encrypted."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def environment() -> dict[str, str]:
    return {
        "ORBIT_SANDBOX": "1",
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": f"http://{HOST}:{TELEGRAM_PORT}",
        "BOT_HTTP_HOST": HOST,
        "BOT_HTTP_PORT": str(BOT_HTTP_PORT),
        "S001_BASE_URL": f"http://{HOST}:{MARZBAN_PORT}",
        "S001_MARZBAN_USERNAME": MARZBAN_USER,
        "S001_MARZBAN_PASSWORD": MARZBAN_PASSWORD,
        "MARZBAN_PASSWORD_KEY": password_key(),
        "TONAPI_URL": f"http://{HOST}:{TONAPI_PORT}",
        "TON_ADDRESS": TON_ADDRESS,
        "CRYPTOBOT_TOKEN": CRYPTOBOT_TOKEN,
        "CRYPTOBOT_API_URL": f"http://{HOST}:{CRYPTOBOT_PORT}",
        "ADMIN_IDS": str(SANDBOX_ADMIN_ID),
        # Read by run.sh, not by the processes.
        "SANDBOX_PAGE_URL": f"http://{HOST}:{PAGE_PORT}/",
        "SANDBOX_CONTROL_URL": f"http://{HOST}:{CONTROL_PORT}/control",
    }


def main() -> None:
    if sys.argv[1:] == ["wanted"]:  # run.sh: exit 0 when the sandbox is to run (.env + environment)
        from orbit.settings import read_environment

        sys.exit(0 if wanted(read_environment()) else 1)
    for name, value in environment().items():
        print(f"{name}={value}")  # noqa: T201


if __name__ == "__main__":
    main()
