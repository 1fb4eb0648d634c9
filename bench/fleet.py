"""A shop's worth of subscriptions on emulated panels, for benchmarks of the janitor's
panel rounds (reconciliation here; expiry reuses it): N users with a subscription,
M configs each, spread round-robin over P Marzban emulators served by a process of
their own (so serving them does not share the benchmark's event loop).

    async with fleet_panels(3, users_per_panel=66_667, expire=until, differ_every=10) as urls:
        names = await build_fleet(pool, urls, subscriptions=100_000, configs_each=2, until=until)

Panel `i` (1-based) holds users `p{i}_00001`, `p{i}_00002`, ... with `expire` = `until`;
every `differ_every`-th of them was changed by hand: its expiry moved back a day, it
was disabled, or it was given a data limit, in turn. The database rows name the same
users, so a reconciliation round has exactly those to fix, one call each.

`python -m bench.fleet --port P --port Q ... --users N --expire TS --differ-every K`
is the panels' process.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg

from orbit.sandbox import standalone
from orbit.sandbox.marzban import MarzbanEmulator

ROOT = Path(__file__).resolve().parents[1]
CONTROL = "/_emulator"
DIFFERENCES = ("expire", "disabled", "data_limit")


def panel_username(panel: int, seq: int) -> str:
    """The name `MarzbanEmulator.add_users(prefix=f"p{panel}")` gives its `seq`-th user."""
    return f"p{panel}_{seq:05d}"


def differs(seq: int, every: int) -> str | None:
    """How the `seq`-th user of a panel was changed by hand, if it was."""
    if every <= 0 or seq % every:
        return None
    return DIFFERENCES[(seq // every) % len(DIFFERENCES)]


class FleetPanel(MarzbanEmulator):
    """The emulator reviews every user's status before each request (O(users): ~0.2 s
    at 67,000 users here); Marzban runs that review as a job every 10 s. Here it runs
    at most once per second of the clock, so a page costs what it costs on a panel."""

    _reviewed_at = -1

    def review_users(self) -> None:
        second = int(self._clock())
        if second != self._reviewed_at:
            self._reviewed_at = second
            super().review_users()


def _fill(panel: MarzbanEmulator, index: int, users: int, expire: int, every: int) -> None:
    for seq, name in enumerate(panel.add_users(users, prefix=f"p{index}"), start=1):
        change = differs(seq, every)
        panel.set_user(
            name,
            expire=expire - 86400 if change == "expire" else expire,
            status="disabled" if change == "disabled" else None,
            data_limit=2**30 if change == "data_limit" else 0,
        )


async def _serve(args: argparse.Namespace) -> None:
    panels = [FleetPanel() for _ in args.port]
    standalone.freeze_survivors_of_full_collections()

    def ready() -> None:
        for index, panel in enumerate(panels, start=1):
            _fill(panel, index, args.users, args.expire, args.differ_every)

    await standalone.run_until_signal(args.host, list(zip(panels, args.port, strict=True)), ready)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


async def counters(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    """The panel's request counters ("PUT /api/user/{username}": n, ...)."""
    async with http.get(f"{url}{CONTROL}/requests") as resp:
        return dict((await resp.json())["counters"])


async def clear_counters(http: aiohttp.ClientSession, url: str) -> None:
    async with http.delete(f"{url}{CONTROL}/requests") as resp:
        resp.raise_for_status()


@asynccontextmanager
async def fleet_panels(
    count: int, *, users_per_panel: int, expire: int, differ_every: int
) -> AsyncIterator[list[str]]:
    """`count` filled panels in a process of their own; their base URLs."""
    ports = _free_ports(count)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fleet", *(f"--port={p}" for p in ports),
        f"--users={users_per_panel}", f"--expire={expire}", f"--differ-every={differ_every}",
        "--log-level=WARNING", cwd=str(ROOT),
    )  # fmt: skip
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        async with aiohttp.ClientSession() as http:
            for url in urls:
                for _ in range(1200):  # filling 100,000 users takes a while
                    try:
                        async with http.get(f"{url}{CONTROL}/state") as resp:
                            if resp.status == 200 and (await resp.json())["users"]:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.5)
                else:
                    raise RuntimeError(f"panel {url} did not come up")
        yield urls
    finally:
        proc.terminate()
        await proc.wait()


async def build_fleet(
    pool: asyncpg.Pool,
    urls: list[str],
    *,
    subscriptions: int,
    configs_each: int,
    until: datetime,
    users_per_panel: int,
) -> int:
    """Instances, users and configs rows naming the panels' users (COPY); how many configs.

    Config k (0-based, over all users in order) lives on panel k % len(urls) as that
    panel's next user, so panels fill evenly and no panel user is left without a row.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO marzban_instances (id, name, base_url, username, password)"
            " VALUES ($1, $1, $2, 'admin', 'admin')",
            [(f"p{i}", url) for i, url in enumerate(urls, start=1)],
        )
        await conn.copy_records_to_table(
            "users",
            columns=("id", "language", "subscription_until"),
            records=((uid, "en", until) for uid in range(1, subscriptions + 1)),
        )
        next_seq = dict.fromkeys(range(1, len(urls) + 1), 0)
        rows = []
        k = 0
        for uid in range(1, subscriptions + 1):
            for n in range(configs_each):
                panel = k % len(urls) + 1
                k += 1
                next_seq[panel] += 1
                if next_seq[panel] > users_per_panel:
                    raise ValueError("more configs than panel users: raise users_per_panel")
                rows.append(
                    (uid, f"p{panel}", panel_username(panel, next_seq[panel]), f"Config {n + 1}", "active")
                )
        await conn.copy_records_to_table(
            "configs", columns=("user_id", "instance_id", "panel_username", "name", "status"), records=rows
        )
    await pool.execute("ANALYZE users; ANALYZE configs")
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = standalone.arguments("Filled Marzban emulators for the benchmarks", prog="python -m bench.fleet")
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--users", type=int, required=True, help="users per panel")
    parser.add_argument("--expire", type=int, required=True, help="their expire (unix seconds)")
    parser.add_argument("--differ-every", type=int, default=10, help="every K-th user changed by hand")
    args = standalone.parse(parser, argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
