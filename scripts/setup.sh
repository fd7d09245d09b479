#!/usr/bin/env bash
# Idempotent machine + project setup for Fleet (Debian, run as root).
# Installs what is missing (PostgreSQL + PostGIS, Mosquitto, Chromium for browser
# tests, the Python venv), starts services that are down, writes a local .env with
# generated secrets (never committed), creates the databases and runs migrations.
# Usage: scripts/setup.sh [--test]   (--test also prepares browser-test tooling)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

need_pkgs=()
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- PostgreSQL + PostGIS -------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(ls /etc/postgresql 2>/dev/null)" ]]; then
  apt_install postgresql postgresql-contrib
fi
PG_VER=$(ls /etc/postgresql | sort -V | tail -n1)
# pg_repack: online re-ordering of closed position days (`fleet positions repack`)
# gcc + mosquitto-dev + libmosquitto-dev: the broker's guard plugin (deploy/mosquitto/fleet_guard.c)
for p in "postgresql-${PG_VER}-postgis-3" "postgresql-${PG_VER}-repack" mosquitto mosquitto-clients \
  gcc mosquitto-dev libmosquitto-dev; do
  have_pkg "$p" || need_pkgs+=("$p")
done
if [[ $WANT_TEST -eq 1 ]]; then
  have_pkg chromium || need_pkgs+=(chromium)
  # CJK glyphs for the browser tests' screenshots (the UI is in Chinese)
  have_pkg fonts-noto-cjk || need_pkgs+=(fonts-noto-cjk)
  # libfaketime: the clock guard (tests/test_clock.py) and the shifted-clock suite run under it
  have_pkg faketime || need_pkgs+=(faketime)
fi
command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
if [[ ${#need_pkgs[@]} -gt 0 ]]; then apt_install "${need_pkgs[@]}"; fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  say "starting PostgreSQL ${PG_VER}"
  pg_ctlcluster --skip-systemctl-redirect "${PG_VER}" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL did not start" >&2; exit 1; }

# --- Python environment -----------------------------------------------------
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
STAMP=.venv/.fleet-installed
HASH=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $STAMP || "$(cat $STAMP)" != "$HASH" ]]; then
  say "installing Python dependencies (first run takes a few minutes)"
  mkdir -p var
  if ! { .venv/bin/pip install -q -U pip && .venv/bin/pip install -q -e '.[dev]'; } >var/pip.log 2>&1; then
    cat var/pip.log >&2
    echo "Python dependency install failed (log above, also in var/pip.log)" >&2
    exit 1
  fi
  echo "$HASH" > $STAMP
fi

# --- local secrets (.env, git-ignored) ---------------------------------------
touch .env
add_secret() {
  grep -q "^$1=" .env || echo "$1=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')" >> .env
}
add_secret FLEET_AUTH__SECRET
add_secret FLEET_SEED__DEMO_PASSWORD
add_secret FLEET_SEED__TERMINAL_KEY
add_secret FLEET_MQTT__SERVICE_PASSWORD
# The runtime database role's password (`fleet db init` creates the role fleet_app with it;
# the owner role, postgres by default, is FLEET_DB__OWNER_USER / __OWNER_PASSWORD).
add_secret FLEET_DB__PASSWORD
chmod 600 .env

# --- web front end ------------------------------------------------------------
if [[ -f web/frontend/package.json ]]; then
  if [[ ! -d web/frontend/node_modules || web/frontend/package.json -nt web/frontend/node_modules/.stamp ]]; then
    say "installing front-end packages"
    (cd web/frontend && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
  # Rebuild only when a source is newer than the last build.
  if [[ ! -f web/frontend/dist/index.html ]] || [[ -n "$(find web/frontend -path web/frontend/node_modules -prune -o -path web/frontend/dist -prune -o -type f -newer web/frontend/dist/index.html -print -quit)" ]]; then
    say "building front end"
    (cd web/frontend && npm run --silent build >/dev/null)
  fi
fi

# --- database -----------------------------------------------------------------
say "database + migrations + runtime role"
.venv/bin/fleet db init

# --- audit anchoring key (var/audit-keys, git-ignored; never in the database) ---------
.venv/bin/fleet audit keygen >/dev/null

# --- broker --------------------------------------------------------------------
if .venv/bin/fleet broker --help >/dev/null 2>&1; then
  if ! .venv/bin/fleet broker start; then
    # The tests start brokers of their own on free ports; only the demo needs this one.
    if [[ $WANT_TEST -eq 1 ]]; then
      say "warning: the project broker did not start (see above); tests use their own brokers"
    else
      exit 1
    fi
  fi
fi
say "ready"
