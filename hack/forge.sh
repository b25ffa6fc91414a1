#!/usr/bin/env bash
# The Forge: a real Gitea (the testers' identity provider), headless on 127.0.0.1, with SQLite in
# its data folder, an administrator made by Gitea's own CLI and an admin API token for the
# controller (its admin API and its OAuth2/OIDC provider).
#
#   hack/forge.sh up     start (or reuse) it; idempotent: an answering Forge is left alone
#   hack/forge.sh down   stop it; data stays in the data folder
#   hack/forge.sh env    print FORGE_URL=... and FORGE_TOKEN_FILE=... (for eval)
#
# FORGE_BIND: the address Gitea listens on (default 127.0.0.1; its URLs always name 127.0.0.1).
# FORGE_DIR: the data folder (default .run/forge): app.ini, gitea.db, logs, the pid file, and
# admin-token / admin-password (mode 0600; never printed). The port: FORGE_PORT if set (refused,
# with who holds it, when it is taken); otherwise the one recorded in the data folder, or 3300,
# or the next free one when something else holds it. The binary comes from
# `hack/build-tools.sh gitea` ($TOOLS_BIN/gitea, or GITEA_BIN).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
# shellcheck source=hack/ports.sh
source "$root/hack/ports.sh"
data="${FORGE_DIR:-$root/.run/forge}"
gitea="${GITEA_BIN:-$TOOLS_BIN/gitea}"
admin="${FORGE_ADMIN:-hero-admin}"
port_file="$data/port"
pid_file="$data/gitea.pid"
token_file="$data/admin-token"
ini="$data/app.ini"

recorded_port() { cat "$port_file" 2>/dev/null || echo "${FORGE_PORT:-3300}"; }
url() { echo "http://127.0.0.1:$(recorded_port)/"; }

# running PID: the process exists and is not a zombie waiting to be reaped.
running() { [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" | grep -q '^Z'; }
alive() { [ -f "$pid_file" ] && running "$(cat "$pid_file")"; }

# healthy: Gitea's health check (database and cache) answers "pass" on the recorded port.
healthy() {
  curl -fsS --max-time 2 "$(url)api/healthz" 2>/dev/null | grep -q '"status": *"pass"'
}

# gitea_cli ARGS...: the CLI on this data folder's config (it works on the database directly).
gitea_cli() { "$gitea" --config "$ini" --work-path "$data" "$@"; }

# secret NAME: a secret generated once by `gitea generate secret NAME`, kept in secrets/NAME.
secret() {
  local f="$data/secrets/$1"
  if [ ! -s "$f" ]; then
    (umask 077 && mkdir -p "$data/secrets" && "$gitea" generate secret "$1" > "$f.tmp" && mv "$f.tmp" "$f")
  fi
  cat "$f"
}

# taken PORT: one line saying who holds PORT and how to stop it (another Forge: its data folder).
taken() {
  local holder pid name cfg
  holder="$(port_holder "$1")"
  if [ -z "$holder" ]; then
    echo "port $1 (the Forge) is taken by a process this user cannot see; free it or choose another FORGE_PORT"
    return
  fi
  read -r pid name <<<"$holder"
  cfg="$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -A1 -x -- '--config' | tail -n +2 | head -1)"
  if [ "$name" = gitea ] && [ -n "$cfg" ]; then
    echo "port $1 (the Forge) is taken by the Forge in $(dirname "$cfg") (pid $pid); stop it with: FORGE_DIR=$(dirname "$cfg") $0 down"
  else
    echo "port $1 (the Forge) is taken by $name (pid $pid); stop it (kill $pid) or choose another FORGE_PORT"
  fi
}

pick_port() {
  if [ -n "${FORGE_PORT:-}" ]; then
    if port_in_use "$FORGE_PORT"; then
      taken "$FORGE_PORT" >&2
      exit 1
    fi
    echo "$FORGE_PORT"
    return
  fi
  local p
  p="$(cat "$port_file" 2>/dev/null || echo 3300)"
  port_in_use "$p" && p="$(free_port "$p")"
  echo "$p"
}

write_ini() {
  local port="$1" run_user root_lines=""
  run_user="$(id -un)"
  # Gitea refuses to run as root unless told; this machine's sessions and CI are root.
  [ "$(id -u)" = 0 ] && root_lines="I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true"
  (umask 077 && cat > "$ini.tmp" <<EOF
; Written by hack/forge.sh on each start; edits are lost.
APP_NAME = Hero Forge
RUN_USER = $run_user
RUN_MODE = prod
WORK_PATH = $data
$root_lines

[server]
PROTOCOL = http
HTTP_ADDR = ${FORGE_BIND:-127.0.0.1}
HTTP_PORT = $port
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:$port/
APP_DATA_PATH = $data/data
; Offline: no CDN, no Gravatar (avatars are generated locally).
OFFLINE_MODE = true
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = $data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = $data/repositories

[security]
INSTALL_LOCK = true
SECRET_KEY = $(secret SECRET_KEY)
INTERNAL_TOKEN = $(secret INTERNAL_TOKEN)

[oauth2]
ENABLED = true
JWT_SECRET = $(secret JWT_SECRET)

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false
ENABLE_NOTIFY_MAIL = false

[mailer]
ENABLED = false

[cron.update_checker]
ENABLED = false

[session]
PROVIDER = file

[log]
MODE = file
LEVEL = Info
ROOT_PATH = $data/log
EOF
  )
  mv "$ini.tmp" "$ini"
}

# token_works: the admin token in $token_file is accepted by the running Forge (the token goes
# to curl on its standard input, not on a command line).
token_works() {
  [ -s "$token_file" ] || return 1
  printf 'header = "Authorization: token %s"\n' "$(cat "$token_file")" |
    curl -fsS --max-time 5 -K - -o /dev/null "$(url)api/v1/admin/users?limit=1" 2>/dev/null
}

ensure_admin() {
  if ! gitea_cli admin user list --admin 2>/dev/null | awk 'NR>1 {print $2}' | grep -qx "$admin"; then
    local out pw
    # The generated password is kept (0600) for signing in to the web UI, never printed.
    out="$(gitea_cli admin user create --admin --username "$admin" \
      --email "$admin@forge.localhost" --random-password --random-password-length 24 \
      --must-change-password=false 2>&1)" || {
      echo "creating the Forge administrator failed:" >&2
      grep -v "password" <<<"$out" >&2
      exit 1
    }
    pw="$(sed -n "s/^generated random password is '\(.*\)'$/\1/p" <<<"$out")"
    (umask 077 && printf '%s\n' "$pw" > "$data/admin-password")
  fi
  token_works && return 0
  # A token named "controller" may exist already (the file was lost): name the new one uniquely.
  local name="controller"
  [ -s "$token_file" ] || [ -f "$data/.token-minted" ] && name="controller-$(date +%s)"
  (
    umask 077
    gitea_cli admin user generate-access-token --username "$admin" --token-name "$name" \
      --scopes all --raw > "$token_file.tmp" 2>"$data/token.err" || {
      echo "minting the admin token failed: $(cat "$data/token.err")" >&2
      rm -f "$token_file.tmp"
      exit 1
    }
    mv "$token_file.tmp" "$token_file"
    rm -f "$data/token.err"
    touch "$data/.token-minted"
  )
  token_works || { echo "the Forge refuses the admin token it just minted" >&2; exit 1; }
}

up() {
  mkdir -p "$data"
  chmod 700 "$data"
  if alive && healthy; then
    ensure_admin
    return 0
  fi
  [ -x "$gitea" ] || { echo "$gitea is missing; run hack/build-tools.sh gitea" >&2; exit 1; }
  if alive; then
    # Started but not answering (still starting, or wedged): give it the readiness wait below.
    :
  else
    local port
    port="$(pick_port)"
    echo "$port" > "$port_file"
    write_ini "$port"
    mkdir -p "$data/log"
    gitea_cli migrate > "$data/log/migrate.log" 2>&1 || {
      echo "gitea migrate failed; last lines of $data/log/migrate.log:" >&2
      tail -n 20 "$data/log/migrate.log" >&2
      exit 1
    }
    nohup "$gitea" web --config "$ini" --work-path "$data" > "$data/log/stdout.log" 2>&1 &
    echo $! > "$pid_file"
  fi
  # Readiness: /api/healthz says "pass" (the server listens and its database answers).
  local deadline=$((SECONDS + ${FORGE_START_TIMEOUT:-120}))
  until healthy; do
    if ! alive; then
      echo "gitea exited; last lines of $data/log/stdout.log and gitea.log:" >&2
      tail -n 20 "$data/log/stdout.log" "$data/log/gitea.log" >&2 2>/dev/null || true
      rm -f "$pid_file"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "gitea did not answer $(url)api/healthz in ${FORGE_START_TIMEOUT:-120}s; see $data/log" >&2
      exit 1
    fi
    sleep 0.2
  done
  ensure_admin
  echo "Forge (Gitea $("$gitea" --version | awk '{print $3}')) ready at $(url)" >&2
}

down() {
  if alive; then
    local pid
    pid="$(cat "$pid_file")"
    kill "$pid" 2>/dev/null || true
    # Gitea shuts down gracefully on SIGTERM; wait for it to be gone, then insist.
    for _ in $(seq 1 100); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pid_file"
  echo "stopped the Forge (data kept in $data)" >&2
}

env_lines() {
  echo "FORGE_URL=$(url)"
  echo "FORGE_TOKEN_FILE=$token_file"
}

case "${1:-}" in
  up) up; env_lines ;;
  down) down ;;
  env) env_lines ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
