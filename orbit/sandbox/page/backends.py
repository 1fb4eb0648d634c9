"""What the page does to the emulators, through their HTTP control APIs.

The page never reaches into an emulator's memory: it is a client like a test, so it
works the same whether the emulators run in its process or in another one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import msgspec

NANOTONS_PER_TON = Decimal(1_000_000_000)
CONTROL = "/_emulator"
# Marzban tokens live for a day by default; log in again well before that.
TOKEN_REUSE_SECONDS = 600.0
MAX_CLOCK_STEP = 400 * 86400
CRYPTOPAY_LINK = re.compile(r"^https://t\.me/CryptoBot\?start=([A-Za-z0-9_-]+)$")


class BackendError(Exception):
    """An emulator refused a control call (bad input, unknown item): shown to the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Panel:
    id: str
    name: str
    base_url: str
    username: str
    password: str


@dataclass(frozen=True)
class Endpoints:
    """Where the emulators listen, and the shop's TON address the wallet pays to."""

    telegram_url: str
    tonapi_url: str
    cryptobot_url: str
    ton_address: str
    panels: tuple[Panel, ...]
    # The sandbox's one clock (`GET` it, `POST .../advance`): orbit_now() and every emulator.
    clock_url: str | None = None


@dataclass
class _Token:
    value: str
    at: float


@dataclass
class Backends:
    endpoints: Endpoints
    http: aiohttp.ClientSession
    _tokens: dict[str, _Token] = field(default_factory=dict)

    async def _call(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = msgspec.json.encode(body) if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        async with self.http.request(method, url, data=data, headers=all_headers) as resp:
            raw = await resp.read()
        if resp.status >= 400:
            raise BackendError(resp.status, _error_text(raw))
        return msgspec.json.decode(raw) if raw else None

    # --- TON -----------------------------------------------------------------------------

    async def send_ton(self, user_id: int, amount: str, comment: str | None) -> dict[str, Any]:
        """A transfer from the user's own (emulated) wallet to the shop's address."""
        nanotons = parse_ton(amount)
        body = {
            "to": self.endpoints.ton_address,
            "amount": nanotons,
            "comment": comment or None,
            "sender": wallet_address(user_id),
        }
        return await self._call("POST", f"{self.endpoints.tonapi_url}{CONTROL}/send_ton", body)

    # --- Crypto Pay ------------------------------------------------------------------------

    async def pay_cryptopay(self, link: str, asset: str | None) -> dict[str, Any]:
        """Pay the invoice a `https://t.me/CryptoBot?start=<hash>` link opens."""
        match = CRYPTOPAY_LINK.match(link.strip())
        if match is None:
            raise BackendError(400, "not a Crypto Pay invoice link (https://t.me/CryptoBot?start=…)")
        invoices = await self._call("GET", f"{self.endpoints.cryptobot_url}{CONTROL}/invoices")
        found = [i for i in invoices if i.get("hash") == match.group(1)]
        if not found:
            raise BackendError(404, "no such Crypto Pay invoice")
        invoice_id = found[0]["invoice_id"]
        body = {"asset": asset} if asset else {}
        url = f"{self.endpoints.cryptobot_url}{CONTROL}/invoices/{invoice_id}/pay"
        answer = await self._call("POST", url, body)
        return answer["invoice"]  # type: ignore[no-any-return]

    # --- Marzban panels ----------------------------------------------------------------------

    def panel(self, panel_id: str) -> Panel:
        for panel in self.endpoints.panels:
            if panel.id == panel_id:
                return panel
        raise BackendError(404, f"no panel {panel_id}")

    async def _panel_token(self, panel: Panel) -> str:
        token = self._tokens.get(panel.id)
        if token is not None and time.monotonic() - token.at < TOKEN_REUSE_SECONDS:
            return token.value
        form = {"username": panel.username, "password": panel.password}
        async with self.http.post(f"{panel.base_url}/api/admin/token", data=form) as resp:
            raw = await resp.read()
        if resp.status >= 400:
            raise BackendError(resp.status, _error_text(raw))
        value = msgspec.json.decode(raw)["access_token"]
        self._tokens[panel.id] = _Token(value, time.monotonic())
        return value  # type: ignore[no-any-return]

    async def panels(self) -> list[dict[str, Any]]:
        """Each panel as the page shows it: up or down, its nodes, its users."""
        return [await self._panel_view(panel) for panel in self.endpoints.panels]

    async def _panel_view(self, panel: Panel) -> dict[str, Any]:
        view: dict[str, Any] = {"id": panel.id, "name": panel.name, "url": panel.base_url}
        try:
            state = await self._call("GET", f"{panel.base_url}{CONTROL}/state")
            token = await self._panel_token(panel)
            auth = {"Authorization": f"Bearer {token}"}
            users = await self._call("GET", f"{panel.base_url}/api/users", headers=auth)
        except (aiohttp.ClientError, BackendError) as exc:
            self._tokens.pop(panel.id, None)
            return {**view, "up": False, "error": str(exc) or type(exc).__name__, "nodes": [], "users": []}
        view["up"] = True
        view["nodes"] = [
            {"id": n["id"], "name": n["name"], "status": n["status"], "message": n.get("message")}
            for n in state["nodes"]
        ]
        view["users"] = [
            {
                "username": u["username"],
                "status": u["status"],
                "expire": u.get("expire"),
                "used_traffic": u.get("used_traffic", 0),
                "data_limit": u.get("data_limit"),
            }
            for u in users["users"]
        ]
        return view

    async def set_node_up(self, panel_id: str, node_id: int, up: bool) -> dict[str, Any]:
        """Take a node down (unreachable, status error) or bring it back (connected)."""
        panel = self.panel(panel_id)
        body = {"status": "connected" if up else "error", "reachable": up}
        return await self._call("PATCH", f"{panel.base_url}{CONTROL}/nodes/{node_id}", body)

    async def add_usage(self, panel_id: str, username: str, nbytes: int) -> dict[str, Any]:
        if nbytes <= 0:
            raise BackendError(400, "usage must be positive")
        panel = self.panel(panel_id)
        url = f"{panel.base_url}{CONTROL}/users/{username}"
        return await self._call("PATCH", url, {"add_traffic": nbytes})

    # --- clock ---------------------------------------------------------------------------------

    async def clock(self) -> dict[str, Any]:
        """The sandbox clock's offset (seconds ahead of real time) and what it calls now."""
        if self.endpoints.clock_url is None:
            raise BackendError(409, "this sandbox has no clock control")
        return await self._call("GET", self.endpoints.clock_url)

    async def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the database's orbit_now() and every emulator forward, through the sandbox's clock."""
        if self.endpoints.clock_url is None:
            raise BackendError(409, "this sandbox has no clock control")
        if not 0 < seconds <= MAX_CLOCK_STEP:
            raise BackendError(400, "move the clock forward by up to 400 days at a time")
        return await self._call("POST", f"{self.endpoints.clock_url}/advance", {"seconds": seconds})


def parse_ton(amount: str) -> int:
    """'1.5' TON → 1_500_000_000 nanotons; refuses anything else with a clear message."""
    try:
        value = Decimal(amount.strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise BackendError(400, "the amount must be a number of TON, like 1.5") from None
    nanotons = value * NANOTONS_PER_TON
    if not value.is_finite() or value <= 0 or nanotons != nanotons.to_integral_value():
        raise BackendError(400, "the amount must be positive, at most 9 decimal places")
    if nanotons > 10**18:
        raise BackendError(400, "that is more TON than exists")
    return int(nanotons)


def wallet_address(user_id: int) -> str:
    """The test user's own wallet: a raw address derived from their Telegram id."""
    return f"0:{user_id % 16**64:064x}"


def _error_text(raw: bytes) -> str:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode(errors="replace")[:300]
    if isinstance(body, dict):
        for key in ("error", "detail", "description"):
            if key in body:
                return str(body[key])
    return str(body)[:300]
