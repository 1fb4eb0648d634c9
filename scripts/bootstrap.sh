#!/usr/bin/env bash
# Make this machine ready for Orbit: Python venv with the package, Postgres and
# Redis installed (Debian packages) and running, the database created and migrated.
# Idempotent: every step checks before it acts. Sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[orbit] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    say "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Python -----------------------------------------------------------------
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3 python3-venv python3-dev
fi

# --- Chromium, for the browser tests (tests/browser); test.sh and .ci/run ask for it --------
if [ -n "${ORBIT_BROWSER_TESTS:-}" ] && ! command -v chromium >/dev/null; then
    apt_install chromium fonts-noto-color-emoji  # emoji: the bot's buttons in screenshots
fi

# --- PostgreSQL ---------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql postgresql-client
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    say "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# --- Redis --------------------------------------------------------------------
if ! command -v redis-server >/dev/null; then
    apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

# --- Database role and database -------------------------------------------------
# Fresh Debian clusters use peer auth on the socket: talk to them as `postgres`.
psql_admin() {
    if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1; then
        runuser -u postgres -- psql -qtA -v ON_ERROR_STOP=1 "$@"
    else
        psql -h 127.0.0.1 -U postgres -qtA -v ON_ERROR_STOP=1 "$@"
    fi
}
DB_USER="${DATABASE_USER:-orbit}"
DB_PASSWORD="${DATABASE_PASSWORD:-orbit}"
DB_NAME="${DATABASE_NAME:-orbit}"
if [ -z "${DATABASE_URL:-}" ]; then
    if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
        say "creating database role $DB_USER"
        psql_admin -d postgres -c "CREATE ROLE \"$DB_USER\" LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
    fi
    if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
        say "creating database $DB_NAME"
        psql_admin -d postgres -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\""
    fi
fi

# --- Virtualenv and package --------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
# ORBIT_EXTRAS: the package's extras to install; the tests want `test` (the default),
# running the product wants none (run.sh), which spares a fresh machine the test tools.
extras="${ORBIT_EXTRAS-test}"
stamp=.venv/.orbit-installed${extras:+-$extras}
installed=""
for made in "$stamp" .venv/.orbit-installed-test; do  # the test install holds the product's too
    if [ -f "$made" ] && [ ! setup.cfg -nt "$made" ] && [ ! pyproject.toml -nt "$made" ]; then
        installed=1
    fi
done
if [ -z "$installed" ]; then
    say "installing Python packages${extras:+ (with $extras extras)}"
    .venv/bin/pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
    touch "$stamp"
fi

# Logs, the supervisor socket and run/sandbox.env (settings) are the operator's alone;
# chmod also closes a tree made before this was so.
mkdir -p run logs
chmod 700 run logs
find run logs -type f -exec chmod go-rwx {} +
