# Sourced by scripts/test: installs (if missing) and starts a Redis and a
# PostgreSQL server on loopback for the adapters' tests, then exports
# DEVICE_GRANT_REDIS_URL and DEVICE_GRANT_POSTGRES_URL.
#
# Sourced, so: no `exit`, no `set` changes, idempotent, and quick when both
# servers already answer. Ports are not the defaults so that a system-wide
# server (or another checkout's) does not collide with ours.

dg_redis_port="${DEVICE_GRANT_REDIS_PORT:-6391}"
dg_pg_port="${DEVICE_GRANT_PG_PORT:-5441}"
dg_state="${DEVICE_GRANT_SERVICES_DIR:-/tmp/device-grant-services}"
dg_pg_data="$dg_state/pg"

dg_pg_bin() {
  # Debian puts the server binaries in a versioned directory; take the newest.
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

dg_redis_up() {
  command -v redis-cli >/dev/null 2>&1 &&
    [ "$(redis-cli -h 127.0.0.1 -p "$dg_redis_port" ping 2>/dev/null)" = "PONG" ]
}

dg_pg_up() {
  command -v pg_isready >/dev/null 2>&1 &&
    pg_isready -q -h 127.0.0.1 -p "$dg_pg_port" -U postgres
}

if ! dg_redis_up || ! dg_pg_up; then
  if ! command -v redis-server >/dev/null 2>&1 || [ -z "$(dg_pg_bin)" ]; then
    echo "installing redis-server and postgresql from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql >/dev/null
  fi
  mkdir -p "$dg_state"

  if ! dg_redis_up; then
    # No persistence: test data only, and a restart must start empty.
    redis-server --port "$dg_redis_port" --bind 127.0.0.1 --daemonize yes \
      --save '' --appendonly no --dir "$dg_state" \
      --logfile "$dg_state/redis.log" --pidfile "$dg_state/redis.pid"
  fi

  if ! dg_pg_up; then
    dg_bin="$(dg_pg_bin)"
    chown postgres:postgres "$dg_state"
    if [ ! -s "$dg_pg_data/PG_VERSION" ]; then
      rm -rf "$dg_pg_data"
      su postgres -s /bin/sh -c "'$dg_bin/initdb' -D '$dg_pg_data' -U postgres -A trust --no-sync" >/dev/null
    fi
    # Stale pid file from a killed run: pg_ctl would refuse to start.
    rm -f "$dg_pg_data/postmaster.pid"
    su postgres -s /bin/sh -c "'$dg_bin/pg_ctl' -D '$dg_pg_data' -l '$dg_state/pg.log' -w -t 60 \
      -o \"-p $dg_pg_port -c listen_addresses=127.0.0.1 -k '$dg_state' -c fsync=off -c max_connections=200\" start" >/dev/null
  fi

  for _ in $(seq 1 100); do
    if dg_redis_up && dg_pg_up; then break; fi
    sleep 0.1
  done
  if ! dg_redis_up; then echo "WARNING: redis did not start; see $dg_state/redis.log" >&2; fi
  if ! dg_pg_up; then echo "WARNING: postgresql did not start; see $dg_state/pg.log" >&2; fi
fi

if dg_pg_up; then
  if ! psql -h 127.0.0.1 -p "$dg_pg_port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'device_grant_test'" | grep -q 1; then
    psql -q -h 127.0.0.1 -p "$dg_pg_port" -U postgres -c "CREATE DATABASE device_grant_test" >/dev/null
  fi
fi

export DEVICE_GRANT_REDIS_URL="redis://127.0.0.1:$dg_redis_port/"
export DEVICE_GRANT_POSTGRES_URL="postgres://postgres@127.0.0.1:$dg_pg_port/device_grant_test"
echo "redis: $DEVICE_GRANT_REDIS_URL  postgres: $DEVICE_GRANT_POSTGRES_URL"
unset -f dg_pg_bin dg_redis_up dg_pg_up
unset dg_redis_port dg_pg_port dg_state dg_pg_data dg_bin
