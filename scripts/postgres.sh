#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests and benchmarks: Debian's postgresql
# package (installed with apt-get when missing and this runs as root), a new cluster in
# DIR (default /tmp/cardguard-test-postgres: as root the server runs as the postgres user,
# which must reach it) on a free loopback port, trust authentication for the role
# cardguard, no systemd. Prints the connection URL on its last line. `stop` stops it.
#   scripts/postgres.sh [start|stop] [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-start}
dir=${2:-${TMPDIR:-/tmp}/cardguard-test-postgres}
mkdir -p "$(dirname "$dir")"
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql (apt-get)" >&2
    apt-get install -y -qq postgresql >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  else
    echo "PostgreSQL is not installed and this is not root: install Debian's postgresql" >&2
    exit 1
  fi
fi

# initdb and the server refuse to run as root: as root they run as the postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$action" = stop ]; then
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
  exit 0
fi

if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  port=$(cat "$dir/port")
else
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U cardguard --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" > "$dir/port"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
fi
echo "postgres://cardguard@127.0.0.1:$port/postgres"
