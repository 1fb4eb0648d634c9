"""`orbit instances`: the Marzban panels Orbit provisions on, without SQL.

    orbit instances list [--json]
    orbit instances add ID --url URL --username NAME (--password P | --password-stdin)
                        [--sub-url URL] [--name TEXT] [--priority N] [--disabled] [--no-check]
    orbit instances edit ID [--name] [--url] [--sub-url] [--username]
                        [--password | --password-stdin] [--priority] [--no-check]
    orbit instances enable|disable|remove|drain ID
    orbit instances exclude-node|include-node ID NODE_NAME
    orbit instances refresh                 ask the balancer for new scores now
    orbit instances encrypt-passwords
    orbit instances orphans ID [--json]

Passwords are stored encrypted with MARZBAN_PASSWORD_KEY (orbit/marzban/passwords.py);
without the key, add and edit refuse to store a new one.

Every change pokes the balancer so the scores follow at once. Bad input is
refused in one line (exit code 2); nothing is changed then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import audit, keys
from orbit.admin import panels
from orbit.admin.errors import AdminError
from orbit.admin.panels import set_instance_active
from orbit.audit import cli_actor
from orbit.cli.errors import CommandError
from orbit.configs import queries as configs_q
from orbit.connections import check_redis, create_pool, create_redis
from orbit.marzban import instances, reconcile_queries
from orbit.marzban.client import MarzbanClient
from orbit.marzban.drain import drain_instance
from orbit.marzban.errors import (
    DrainRefused,
    InstanceNotFound,
    PanelAuthFailed,
    PanelRejected,
    PanelUnavailable,
)
from orbit.marzban.instances import Instance, InvalidInstance
from orbit.marzban.passwords import (
    GENERATE_HINT,
    KEY_VARIABLE,
    PanelPasswords,
    PasswordKeyError,
    encrypt_stored,
)
from orbit.marzban.placement import InstanceHealth, poke_balancer, read_health
from orbit.marzban.provisioning import PanelDeps
from orbit.marzban.scoring import PRIORITY_LIMIT
from orbit.migrate import require_schema
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("instances", help="manage the Marzban panels")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every instance with its health and configs")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    add = actions.add_parser("add", help="register a panel")
    add.add_argument("id", help="short id: a-z, 0-9, '_' or '-' (e.g. de1)")
    add.add_argument("--url", required=True, help="panel base URL, e.g. https://panel.example.com")
    add.add_argument("--username", required=True, help="a sudo admin of the panel")
    _password_options(add, required=True)
    add.add_argument("--sub-url", help=SUB_URL_HELP)
    add.add_argument("--name", help="display name (default: the id)")
    add.add_argument("--priority", type=int, default=0, help="higher is preferred (default 0)")
    add.add_argument("--disabled", action="store_true", help="register it inactive")
    add.add_argument("--no-check", action="store_true", help="do not log in to check it")

    edit = actions.add_parser("edit", help="change a panel's URL, credentials, name or priority")
    edit.add_argument("id")
    edit.add_argument("--url")
    edit.add_argument("--sub-url", help=SUB_URL_HELP + "; '' clears it")
    edit.add_argument("--username")
    _password_options(edit, required=False)
    edit.add_argument("--name")
    edit.add_argument("--priority", type=int)
    edit.add_argument("--no-check", action="store_true", help="do not log in to check it")

    for action, text in (
        ("enable", "let new configs go to the instance"),
        ("disable", "send no new configs to the instance (existing ones stay)"),
        ("remove", "forget an instance that holds no configs"),
        ("drain", "move every config of the instance to the others"),
    ):
        actions.add_parser(action, help=text).add_argument("id")
    actions.add_parser(
        "encrypt-passwords", help="encrypt stored panel passwords with MARZBAN_PASSWORD_KEY"
    )
    actions.add_parser("refresh", help="ask the balancer to score every instance now")
    orphans = actions.add_parser(
        "orphans", help="panel users no config knows, as the last reconciliation found them"
    )
    orphans.add_argument("id")
    orphans.add_argument("--json", action="store_true", help="machine-readable output")
    for action, text in (
        ("exclude-node", "ignore a node of the instance when scoring"),
        ("include-node", "score a previously excluded node again"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("id")
        sub.add_argument("node", help="the node's name as the panel shows it")
    parser.set_defaults(func=run)


SUB_URL_HELP = (
    "public base of subscription links, e.g. https://sub.example.com, when the panel"
    " answers relative ones (no XRAY_SUBSCRIPTION_URL_PREFIX) and --url is not public"
)


def _password_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--password", help="the admin's password (visible in `ps`)")
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


@dataclass
class _Env:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession

    @property
    def deps(self) -> PanelDeps:
        return PanelDeps(self.pool, self.redis, self.http, self.settings)


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[_Env]:
    pool = await create_pool(settings, max_size=4)
    try:
        await require_schema(pool)
        redis = create_redis(settings)
        try:
            await check_redis(redis, settings)
            async with aiohttp.ClientSession() as http:
                yield _Env(settings, pool, redis, http)
        finally:
            await redis.aclose()
    finally:
        await pool.close()


def _out(line: str = "") -> None:
    print(line)  # noqa: T201


async def run(args: argparse.Namespace, settings: Settings) -> int:
    handler = _HANDLERS[args.action]
    async with _connect(settings) as env:
        return await handler(args, env)


def _password(args: argparse.Namespace) -> str | None:
    password: str | None = args.password
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    if password is not None and not password:
        raise CommandError("the password is empty")
    return password


def _sealer(env: _Env) -> PanelPasswords:
    """Refuses to store a new password in plain text: Postgres dumps and backups
    travel further than the .env holding the key."""
    passwords = env.deps.passwords
    if not passwords.has_key:
        raise CommandError(
            f"{KEY_VARIABLE} is not set: panel passwords are stored encrypted with it;"
            f" {GENERATE_HINT}, put it in .env, then run this again"
        )
    return passwords


def _sub_url(value: str | None) -> str | None:
    """--sub-url checked like --url; '' (clear) passes through."""
    if value is None or value == "":
        return value
    try:
        return instances.normalize_base_url(value)
    except InvalidInstance as exc:
        raise CommandError(f"--sub-url: {exc}") from None


def _warn_about_links(instance: Instance) -> None:
    if instances.loopback_or_private(instance.link_base):
        _out(
            f"warning: subscription links of {instance.id} will point at {instance.link_base},"
            " which users cannot reach, unless the panel sets XRAY_SUBSCRIPTION_URL_PREFIX:"
            " give --sub-url https://<public host> (docs/marzban.md)"
        )


def _priority(value: int | None) -> int | None:
    if value is not None and not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise CommandError(f"priority {value} is out of range: use -{PRIORITY_LIMIT}..{PRIORITY_LIMIT}")
    return value


async def _require(env: _Env, instance_id: str) -> Instance:
    instance = await instances.get_instance(env.pool, instance_id)
    if instance is None:
        known = [i.id for i in await instances.list_instances(env.pool)]
        raise CommandError(
            f"unknown instance {instance_id!r}"
            + (f" (known: {', '.join(known)})" if known else " (none registered)")
        )
    return instance


async def _check_panel(env: _Env, instance: Instance) -> None:
    """Log in with the instance's credentials and read its nodes (a sudo-only call)."""
    client = MarzbanClient(
        env.http,
        env.redis,
        instance,
        timeout=env.settings.marzban_timeout_seconds,
        retries=0,
        passwords=env.deps.passwords,
    )
    try:
        await client.get_nodes()
        admin = await client.get_admin()
    except PanelAuthFailed as exc:
        raise CommandError(f"{instance.base_url} refused the credentials: {exc.reason}") from None
    except PanelUnavailable as exc:
        raise CommandError(
            f"cannot reach the panel at {instance.base_url} ({exc.reason});"
            " add --no-check to save it anyway"
        ) from None
    except PanelRejected as exc:
        if exc.status == 403:
            raise CommandError(
                f"{instance.username!r} is not a sudo admin of {instance.base_url}:"
                " the balancer needs one to read nodes"
            ) from None
        raise CommandError(f"the panel at {instance.base_url} answered {exc.status}: {exc.detail}") from None
    if admin.from_environment:
        _out(
            f"warning: {instance.username!r} is the panel's SUDO_USERNAME admin (from its environment):"
            " Marzban v0.8.4 answers 500 when deleting its users, before Xray drops them."
            " Orbit disables each user before deleting it, so nobody keeps access, but prefer"
            " an admin made with `marzban cli admin create --sudo` (docs/marzban.md)"
        )


async def _forget_token(env: _Env, instance_id: str) -> None:
    with suppress(RedisError, OSError):
        await env.redis.delete(keys.marzban_token(instance_id))


async def _list(args: argparse.Namespace, env: _Env) -> int:
    registry = await instances.list_instances(env.pool)
    counts = await instances.live_config_counts(env.pool)
    removals = await configs_q.removal_counts(env.pool)
    health = await read_health(env.redis, [i.id for i in registry])
    scores = await panels.read_scores(env.redis)
    if args.json:
        rows = [
            {
                "id": i.id,
                "name": i.name,
                "base_url": i.base_url,
                "is_active": i.is_active,
                "priority": i.priority,
                "excluded_node_names": list(i.excluded_node_names),
                "configs": counts.get(i.id, 0),
                "removals_left": removals.get(i.id, 0),
                "health": None if health[i.id] is None else msgspec.to_builtins(health[i.id]),
                "scores": msgspec.to_builtins(scores.get(i.id, [])),
            }
            for i in registry
        ]
        _out(msgspec.json.encode(rows).decode())
        return 0
    if not registry:
        _out("no instances registered: orbit instances add ID --url URL --username NAME ...")
        return 0
    _out(
        f"{'id':<12} {'name':<16} {'active':<6} {'prio':>4} {'configs':>7}  "
        f"{'health':<24} {'old panel users':<16} {'excluded nodes':<20} url"
    )
    for i in registry:
        excluded = ",".join(i.excluded_node_names) or "-"
        left = removals.get(i.id, 0)
        pending = f"{left} to remove" if left else "-"
        _out(
            f"{i.id:<12} {i.name[:16]:<16} {'yes' if i.is_active else 'no':<6} {i.priority:>4}"
            f" {counts.get(i.id, 0):>7}  {_health_text(health[i.id]):<24} {pending:<16}"
            f" {excluded:<20} {i.base_url}"
        )
        if scores.get(i.id):
            _out("    scores (lowest wins): " + ", ".join(f"{n.node} {n.score:.3f}" for n in scores[i.id]))
    return 0


def _health_text(health: InstanceHealth | None) -> str:
    if health is None:
        return "unknown (no balancer data)"
    if health.status == "up":
        text = f"up, {health.nodes_usable}/{health.nodes_total or 1} nodes"
    elif health.status == "down":
        text = f"DOWN: {health.error}"[:60]
    else:
        text = health.status
    return text if health.fresh else f"{text} (stale)"


async def _add(args: argparse.Namespace, env: _Env) -> int:
    try:
        instance = Instance(
            id=instances.check_id(args.id),
            name=args.name or args.id,
            base_url=instances.normalize_base_url(args.url),
            username=args.username,
            password=_password(args) or "",
            is_active=not args.disabled,
            priority=_priority(args.priority) or 0,
            sub_url=_sub_url(args.sub_url) or None,
        )
    except InvalidInstance as exc:
        raise CommandError(str(exc)) from None
    if not instance.username:
        raise CommandError("the username is empty")
    passwords = _sealer(env)
    if await instances.get_instance(env.pool, instance.id) is not None:
        raise CommandError(f"instance {instance.id!r} already exists (use `orbit instances edit`)")
    if not args.no_check:
        await _forget_token(env, instance.id)
        await _check_panel(env, instance)
    sealed = msgspec.structs.replace(instance, password=passwords.seal(instance.password))
    async with env.pool.acquire() as conn, conn.transaction():
        created = await instances.insert_instance(conn, sealed)
        if created:
            target = audit.instance_target(instance.id)
            await audit.record(conn, cli_actor(), "instance.add", target=target, after=instance)
    if not created:
        raise CommandError(f"instance {instance.id!r} already exists (use `orbit instances edit`)")
    _warn_about_links(instance)
    await poke_balancer(env.redis)
    _out(
        f"added instance {instance.id} ({instance.base_url}),"
        f" {'active' if instance.is_active else 'disabled'}, priority {instance.priority}"
    )
    return 0


async def _edit(args: argparse.Namespace, env: _Env) -> int:
    current = await _require(env, args.id)
    try:
        url = None if args.url is None else instances.normalize_base_url(args.url)
    except InvalidInstance as exc:
        raise CommandError(str(exc)) from None
    password = _password(args)
    sub_url = _sub_url(args.sub_url)
    if args.username is not None and not args.username:
        raise CommandError("the username is empty")
    if args.name is not None and not args.name.strip():
        raise CommandError("the name is empty")
    changes = {
        "name": args.name,
        "base_url": url,
        "username": args.username,
        "password": password,
        "priority": _priority(args.priority),
        "sub_url": sub_url,
    }
    if all(v is None for v in changes.values()):
        raise CommandError(
            "nothing to change: give --url, --sub-url, --username, --password, --name or --priority"
        )
    sealed = None if password is None else _sealer(env).seal(password)
    access_changed = url is not None or args.username is not None or password is not None
    if access_changed and not args.no_check:
        candidate = msgspec.structs.replace(
            current, **{k: v for k, v in changes.items() if v is not None and k != "sub_url"}
        )
        await _forget_token(env, current.id)
        await _check_panel(env, candidate)
    async with env.pool.acquire() as conn, conn.transaction():
        updated = await instances.update_instance(conn, current.id, **{**changes, "password": sealed})
        if updated is None:
            raise CommandError(f"unknown instance {args.id!r}")
        moved = 0
        if updated.link_base != current.link_base:  # stored links follow the new base
            moved = await configs_q.rebase_links(conn, current.id, current.link_base, updated.link_base)
        await audit.record(
            conn,
            cli_actor(),
            "instance.edit",
            target=audit.instance_target(current.id),
            before=current,
            after={**msgspec.to_builtins(updated), "password_changed": password is not None},
        )
    if moved:
        _out(f"{moved} stored subscription links now start with {updated.link_base}")
    if sub_url is not None or url is not None:
        _warn_about_links(updated)
    if access_changed:
        await _forget_token(env, current.id)
    await poke_balancer(env.redis)
    _out(f"updated instance {updated.id}: {updated}")
    return 0


async def _set_active(args: argparse.Namespace, env: _Env, active: bool) -> int:
    await _require(env, args.id)
    try:  # the panel's own function (pokes the balancer, audits a change)
        line = await set_instance_active(env.pool, env.redis, args.id, active, actor=cli_actor())
    except InstanceNotFound:
        raise CommandError(f"unknown instance {args.id!r}") from None
    configs = line.configs
    if active:
        _out(f"instance {args.id} enabled: new configs may go to it")
    else:
        _out(
            f"instance {args.id} disabled: no new configs go to it;"
            f" its {configs} configs stay (move them with `orbit instances drain {args.id}`)"
        )
    return 0


async def _enable(args: argparse.Namespace, env: _Env) -> int:
    return await _set_active(args, env, True)


async def _disable(args: argparse.Namespace, env: _Env) -> int:
    return await _set_active(args, env, False)


async def _exclude_node(args: argparse.Namespace, env: _Env) -> int:
    await _require(env, args.id)
    try:
        updated = await panels.exclude_node(env.pool, env.redis, args.id, args.node, actor=audit.cli_actor())
    except AdminError:
        raise CommandError("the node name is empty") from None
    _out(f"instance {args.id}: excluded nodes {', '.join(updated.excluded_node_names)}")
    return 0


async def _include_node(args: argparse.Namespace, env: _Env) -> int:
    current = await _require(env, args.id)
    try:
        updated = await panels.include_node(env.pool, env.redis, args.id, args.node, actor=audit.cli_actor())
    except AdminError:
        raise CommandError(
            f"node {args.node!r} is not excluded on {args.id}"
            f" (excluded: {', '.join(current.excluded_node_names) or 'none'})"
        ) from None
    _out(
        f"instance {args.id}: node {args.node!r} included again;"
        f" excluded nodes: {', '.join(updated.excluded_node_names) or 'none'}"
    )
    return 0


async def _refresh(args: argparse.Namespace, env: _Env) -> int:
    await panels.refresh_balancer(env.pool, env.redis, actor=audit.cli_actor())
    _out("the balancer scores every instance now (`orbit instances list` in a few seconds)")
    return 0


async def _remove(args: argparse.Namespace, env: _Env) -> int:
    await _require(env, args.id)
    async with env.pool.acquire() as conn, conn.transaction():
        # Lock the row so no config can be placed on it while we count.
        await conn.execute("SELECT 1 FROM marzban_instances WHERE id = $1 FOR UPDATE", args.id)
        held = await instances.count_live_configs(conn, args.id)
        if held:
            raise CommandError(
                f"instance {args.id} still holds {held} config{'s' if held != 1 else ''}:"
                f" drain it first (orbit instances drain {args.id})"
            )
        try:
            async with conn.transaction():
                before = await instances.get_instance(conn, args.id)
                await instances.delete_instance(conn, args.id)
                target = audit.instance_target(args.id)
                await audit.record(conn, cli_actor(), "instance.remove", target=target, before=before)
        except asyncpg.ForeignKeyViolationError:
            history = await conn.fetchval("SELECT count(*) FROM configs WHERE instance_id = $1", args.id)
            raise CommandError(
                f"instance {args.id} is named by {history} deleted configs kept as history:"
                f" disable it instead (orbit instances disable {args.id})"
            ) from None
    with suppress(RedisError, OSError):
        for key in (keys.balancer_instance(args.id), keys.marzban_token(args.id)):  # two slots
            await env.redis.delete(key)
    await poke_balancer(env.redis)
    _out(f"instance {args.id} removed")
    return 0


async def _encrypt_passwords(args: argparse.Namespace, env: _Env) -> int:
    passwords = _sealer(env)
    try:
        async with env.pool.acquire() as conn, conn.transaction():
            changed = await encrypt_stored(conn, passwords)
            if changed:
                await audit.record(
                    conn, cli_actor(), "instance.encrypt_passwords", after={"passwords_encrypted": changed}
                )
    except PasswordKeyError as exc:
        raise CommandError(str(exc)) from None
    _out(f"{changed} panel passwords encrypted with the first key of {KEY_VARIABLE}")
    return 0


async def _drain(args: argparse.Namespace, env: _Env) -> int:
    await _require(env, args.id)
    from orbit.i18n import create_translator  # slow to import: only drain needs it

    try:
        report = await drain_instance(
            env.deps, args.id, create_translator(), actor=cli_actor(), progress=_out
        )
    except DrainRefused as exc:
        raise CommandError(f"drain of {args.id} refused: {exc}") from None
    _out(
        f"drain of {args.id}: {report.moved} moved, {report.deleted} deleted,"
        f" {report.skipped} already elsewhere, {len(report.failed)} failed"
    )
    for config_id, why in sorted(report.usage_not_carried.items()):
        _out(f"config {config_id}: used traffic not carried over ({why}); it starts from zero")
    if report.old_users_left:
        _out(
            f"{report.old_users_left} old panel users on {args.id} are not removed yet"
            " (the panel did not answer); the balancer keeps retrying"
        )
    if report.failed:
        _out(f"run `orbit instances drain {args.id}` again to retry the failed configs")
        return 1
    _out(f"instance {args.id} is empty and disabled; `orbit instances remove {args.id}` forgets it")
    return 0


async def _orphans(args: argparse.Namespace, env: _Env) -> int:
    await _require(env, args.id)
    found = await reconcile_queries.list_strangers(env.pool, args.id)
    if args.json:
        _out(msgspec.json.encode(found).decode())
        return 0
    if not found:
        _out(f"no panel users on {args.id} that no config knows (as of the last reconciliation)")
        return 0
    _out(f"{'panel user':<32} {'status':<9} {'first seen':<17} {'last seen':<17} note")
    for s in found:
        _out(
            f"{s.panel_username:<32} {s.status:<9} {s.first_seen_at:%Y-%m-%d %H:%M}  "
            f"{s.last_seen_at:%Y-%m-%d %H:%M}  {s.note or '-'}"
        )
    _out(
        f"{len(found)} on {args.id}; the panel reconciliation deletes them only with"
        " PANEL_DELETE_STRANGERS=true"
    )
    return 0


_HANDLERS = {
    "orphans": _orphans,
    "list": _list,
    "add": _add,
    "edit": _edit,
    "enable": _enable,
    "disable": _disable,
    "exclude-node": _exclude_node,
    "include-node": _include_node,
    "refresh": _refresh,
    "remove": _remove,
    "drain": _drain,
    "encrypt-passwords": _encrypt_passwords,
}
