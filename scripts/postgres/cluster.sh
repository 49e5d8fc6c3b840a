#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, benchmarks and CI.
#
#   scripts/postgres/cluster.sh start [--durable]   installs PostgreSQL from Debian's packages when missing, starts a
#                                                   cluster in a new temporary directory on a free loopback port and
#                                                   prints two lines on stdout: `url=<connection URL>`, `dir=<dir>`
#   scripts/postgres/cluster.sh stop DIR            stops that cluster and removes DIR
#   scripts/postgres/cluster.sh run [--durable] -- CMD…
#                                                   start, run CMD with STREAMKEEP_PG_URL set, stop (CMD's exit code)
#   scripts/postgres/cluster.sh install             only make sure the server binaries are installed
#
# Without --durable the cluster runs with fsync, synchronous_commit and full_page_writes off (it is thrown away, so a
# crash cannot lose anything that matters, and tests run several times faster) and deadlock_timeout at 100 ms.
# Everything else is PostgreSQL's default.
# The server listens on 127.0.0.1 only (and a Unix socket inside DIR), with trust authentication for user `postgres`.
# initdb refuses to run as root, so as root the cluster runs as the `postgres` system user (created when missing).
set -euo pipefail

log() { printf 'postgres-cluster: %s\n' "$*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  done
  local initdb
  if initdb=$(command -v initdb 2>/dev/null) && [ -x "$(dirname "$initdb")/pg_ctl" ]; then
    dirname "$initdb"
    return 0
  fi
  return 1
}

install_server() {
  if find_bindir >/dev/null; then return 0; fi
  # Several test processes may start clusters at once on a fresh machine: only one of them installs.
  exec 8>/tmp/streamkeep-pg-install.lock
  flock 8
  if find_bindir >/dev/null; then
    flock -u 8
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and this is not root: install the Debian package 'postgresql' first"
    exit 1
  fi
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  # The package would create and start a default cluster on port 5432; tests only need the binaries.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/streamkeep-no-main-cluster.conf
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >&2
  find_bindir >/dev/null || {
    log "PostgreSQL installed but no initdb found under /usr/lib/postgresql/*/bin"
    exit 1
  }
  flock -u 8
}

# The operating-system user the server runs as, and a command prefix that runs as it.
RUN_USER=""
as_server_user() {
  if [ -z "$RUN_USER" ]; then "$@"; else runuser -u "$RUN_USER" -- "$@"; fi
}

pick_user() {
  if [ "$(id -u)" = 0 ]; then
    RUN_USER=postgres
    if ! id -u "$RUN_USER" >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
    fi
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local durable=0
  if [ "${1:-}" = "--durable" ]; then durable=1; fi
  install_server
  local bindir
  bindir=$(find_bindir)
  pick_user

  local dir
  # As root the server user must reach the directory, so it goes under /tmp rather than a private TMPDIR.
  local parent=${TMPDIR:-/tmp}
  if [ -n "$RUN_USER" ]; then parent=/tmp; fi
  dir=$(mktemp -d "$parent/streamkeep-pg.XXXXXX")
  chmod 700 "$dir"
  if [ -n "$RUN_USER" ]; then chown "$RUN_USER" "$dir"; fi
  cd "$dir"

  as_server_user "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
  }

  local settings=(-c listen_addresses=127.0.0.1 -c "unix_socket_directories=$dir" -c max_connections=300)
  if [ "$durable" = 0 ]; then
    # A short deadlock_timeout lets tests that provoke deadlocks (and the storage's retries) finish quickly.
    settings+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c deadlock_timeout=100ms)
  fi

  local attempt port
  for attempt in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    if port_in_use "$port"; then continue; fi
    if as_server_user "$bindir/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -w -t 60 -s \
      -o "-p $port ${settings[*]}" >&2; then
      printf 'url=postgresql://postgres@127.0.0.1:%s/postgres\n' "$port"
      printf 'dir=%s\n' "$dir"
      return 0
    fi
    log "start on port $port failed (attempt $attempt), retrying"
  done
  tail -n 20 "$dir/server.log" >&2 || true
  rm -rf "$dir"
  log "could not start PostgreSQL"
  exit 1
}

stop() {
  local dir=${1:?usage: cluster.sh stop DIR}
  case "$dir" in
  */streamkeep-pg.*) ;;
  *)
    log "refusing to remove $dir: not a directory made by this script"
    exit 1
    ;;
  esac
  local bindir
  bindir=$(find_bindir)
  pick_user
  if [ -f "$dir/data/postmaster.pid" ]; then
    (cd "$dir" && as_server_user "$bindir/pg_ctl" stop -D "$dir/data" -m immediate -w -s >&2) || true
  fi
  rm -rf "$dir"
}

run() {
  local durable=()
  if [ "${1:-}" = "--durable" ]; then
    durable=(--durable)
    shift
  fi
  if [ "${1:-}" = "--" ]; then shift; fi
  local out url status
  out=$(start "${durable[@]}")
  url=$(printf '%s\n' "$out" | sed -n 's/^url=//p')
  RUN_DIR=$(printf '%s\n' "$out" | sed -n 's/^dir=//p')
  trap 'stop "$RUN_DIR"' EXIT
  status=0
  STREAMKEEP_PG_URL="$url" "$@" || status=$?
  return "$status"
}

case "${1:-}" in
start)
  shift
  start "$@"
  ;;
stop)
  shift
  stop "$@"
  ;;
run)
  shift
  run "$@"
  ;;
install) install_server ;;
*)
  echo "usage: $0 start [--durable] | stop DIR | run [--durable] -- CMD... | install" >&2
  exit 2
  ;;
esac
