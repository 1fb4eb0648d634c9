"""A round-robin reverse proxy in front of several bot processes, as nginx's `upstream`
with one port per process: the tests choose which process gets which update.

Like nginx with `proxy_next_upstream error`: a connection refused (the request never
left) goes to the next process; a connection cut mid-request (a process killed while
handling) is answered 502, and Telegram delivers the update again. It records, per
update, which process got it and when, so a test can show two updates overlapped.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import aiohttp
import msgspec
from aiohttp import web


@dataclass
class Forwarded:
    update_id: int
    upstream: int  # index into the proxy's upstreams
    started: float
    ended: float
    status: int  # 502 when the process went away mid-request


class WebhookProxy:
    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self.log: list[Forwarded] = []
        self.in_flight: dict[int, int] = {}  # update id → the upstream handling it now
        self._turn = itertools.cycle(range(len(upstreams)))
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        # A connection per request (nginx without `keepalive`): a pooled connection to a
        # killed process would fail a request that never reached it.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=60)
        )
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        update_id = msgspec.json.decode(body).get("update_id", 0)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        for _ in self.upstreams:
            index = next(self._turn)
            started = time.monotonic()
            self.in_flight[update_id] = index
            try:
                async with self._session.post(
                    self.upstreams[index] + request.path, data=body, headers=headers
                ) as resp:
                    status, payload = resp.status, await resp.read()
            except aiohttp.ClientConnectorError:
                continue  # never reached the process: the next one gets it
            except (aiohttp.ClientError, TimeoutError):
                self.log.append(Forwarded(update_id, index, started, time.monotonic(), 502))
                return web.Response(status=502)
            finally:
                self.in_flight.pop(update_id, None)
            self.log.append(Forwarded(update_id, index, started, time.monotonic(), status))
            return web.Response(status=status, body=payload, content_type=resp.content_type)
        return web.Response(status=502)

    def handled_by(self) -> dict[int, set[int]]:
        """Upstream index → the update ids it answered with a 2xx."""
        done: dict[int, set[int]] = {}
        for item in self.log:
            if 200 <= item.status < 300:
                done.setdefault(item.upstream, set()).add(item.update_id)
        return done
