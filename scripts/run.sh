#!/usr/bin/env bash
# Run Orbit under supervisord. Without BOT_TOKEN (env or .env) it runs the sandbox:
# local Telegram, Marzban, tonapi and CryptoBot emulators on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORBIT_EXTRAS="" . scripts/bootstrap.sh  # the product's packages only
# From here on (not during bootstrap's package installs): run/sandbox.env holds settings
# (tokens) and supervisord writes logs; both the operator's alone (0600, dirs 0700).
umask 077

env_value() {  # the environment wins over .env, as in orbit/settings.py
    local name=$1
    if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return; fi
    [ -f .env ] && sed -n "s/^${name}=//p" .env | tail -n1 | tr -d '"' || true
}

# The sandbox when BOT_TOKEN is unset, or ORBIT_SANDBOX=1 even with one (orbit/sandbox/config.py).
if .venv/bin/python -m orbit.sandbox.config wanted; then
    say "starting the SANDBOX (local emulators, no real Telegram): no BOT_TOKEN, or ORBIT_SANDBOX=1"
    .venv/bin/python -m orbit.sandbox.config > run/sandbox.env
    set -a; . run/sandbox.env; set +a
    cp scripts/sandbox.supervisord.conf run/sandbox.conf
else
    rm -f run/sandbox.conf run/sandbox.env
fi

.venv/bin/orbit migrate >/dev/null

if [ -S run/supervisor.sock ] && .venv/bin/supervisorctl -c supervisord.conf pid >/dev/null 2>&1; then
    say "supervisord is running: reloading its configuration"
    .venv/bin/supervisorctl -c supervisord.conf reread >/dev/null
    .venv/bin/supervisorctl -c supervisord.conf update
    .venv/bin/supervisorctl -c supervisord.conf restart all >/dev/null
else
    say "starting supervisord"
    .venv/bin/supervisord -c supervisord.conf
fi

# Wait for the four heartbeats (start-up checks take a few seconds).
for _ in $(seq 1 30); do
    .venv/bin/orbit status >/dev/null 2>&1 && break
    sleep 1
done
.venv/bin/orbit status || true
say "metrics: curl 127.0.0.1:$(.venv/bin/python -c 'from orbit.settings import load_settings; print(load_settings().bot_http_port)' 2>/dev/null || echo 8080)/metrics (bot), 127.0.0.1:9102..9104/metrics (ton_watcher, balancer, janitor)"
say "logs: logs/*.log   control: .venv/bin/supervisorctl -c supervisord.conf status"
if [ -f run/sandbox.env ]; then
    say "sandbox control API (the clock, docs/sandbox.md): $(sed -n 's/^SANDBOX_CONTROL_URL=//p' run/sandbox.env)"
    say "the sandbox is up; open it in a browser: $(sed -n 's/^SANDBOX_PAGE_URL=//p' run/sandbox.env)"
fi
