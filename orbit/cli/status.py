"""`orbit status`: prints the deployment's health (orbit/health.py) and exits 1 unless
all is healthy."""

from __future__ import annotations

import argparse
import time

import msgspec

from orbit.health import SUPERVISOR_SOCKET, Status, collect, verdict
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="health of workers and dependencies")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--socket", default=str(SUPERVISOR_SOCKET), help="supervisord socket")
    parser.set_defaults(func=run)


def render(status: Status) -> str:
    behind = ""
    if status.schema != status.schema_expected:
        behind = f" (expected {status.schema_expected})"
    lines = [
        f"postgres  {status.postgres}",
        f"redis     {status.redis}",
        f"supervisd {status.supervisor}",
        f"schema    {status.schema or 'none'}{behind}",
        "",
        f"{'worker':<12} {'state':<10} {'heartbeat':<12} pid",
    ]
    for w in status.workers:
        age = "missing" if w.heartbeat_age is None else f"{w.heartbeat_age:.1f}s ago"
        mark = "" if w.ok else ("  <- UNKNOWN" if w.supervisor_state == "unknown" else "  <- DOWN")
        lines.append(f"{w.name:<12} {w.supervisor_state:<10} {age:<12} {w.pid or '-'}{mark}")
    if status.chores:
        lines += ["", f"{'chore':<22} {'every':>7} {'last run':>12} {'took':>8} {'count':>7}"]
        now = time.time()
        for c in status.chores:
            ago = f"{max(0.0, now - c.last_run_at):.0f}s ago"
            result = f"{c.count:>7}" if c.ok else f"{'-':>7}  <- FAILED: {c.error}"
            lines.append(f"{c.name:<22} {c.interval:>6.0f}s {ago:>12} {c.duration:>7.2f}s {result}")
    lines.append("")
    lines.append(verdict(status))
    return "\n".join(lines)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    status = await collect(settings, args.socket)
    if args.json:
        print(msgspec.json.encode(status).decode())  # noqa: T201
    else:
        print(render(status))  # noqa: T201
    return 0 if status.ok else 1
