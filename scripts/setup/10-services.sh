# Sourced by scripts/test: installs (if missing) and starts a Redis and a
# PostgreSQL server on loopback for the adapters' tests, then exports
# DEVICE_GRANT_REDIS_URL and DEVICE_GRANT_POSTGRES_URL. It also starts a Redis
# Cluster of three primaries and three replicas (ports 7301-7306) and exports
# DEVICE_GRANT_REDIS_CLUSTER_URL, and a primary with one replica (ports 6392
# and 6393, DEVICE_GRANT_REDIS_PAIR="primary,replica") for failover tests. The
# PostgreSQL server
# also takes TLS, with a certificate for localhost and 127.0.0.1 from a
# throwaway CA made here; DEVICE_GRANT_POSTGRES_CA is that CA's PEM file.
#
# Sourced, so: no `exit`, no `set` changes, idempotent, and quick when both
# servers already answer. Ports are not the defaults so that a system-wide
# server (or another checkout's) does not collide with ours.

dg_redis_port="${DEVICE_GRANT_REDIS_PORT:-6391}"
dg_pg_port="${DEVICE_GRANT_PG_PORT:-5441}"
dg_state="${DEVICE_GRANT_SERVICES_DIR:-/tmp/device-grant-services}"
dg_pg_data="$dg_state/pg"
dg_tls="$dg_state/tls"

dg_pg_bin() {
  # Debian puts the server binaries in a versioned directory; take the newest.
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

dg_pg_tls_files() {
  # The CA and the server's certificate and key, made once (EC P-256, ten
  # years). Only for tests: the CA's key stays beside it.
  [ -s "$dg_tls/ca.pem" ] && [ -s "$dg_tls/server.crt" ] && [ -s "$dg_tls/server.key" ] && return 0
  if ! command -v openssl >/dev/null 2>&1; then
    echo "installing openssl from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
  rm -rf "$dg_tls"
  mkdir -p "$dg_tls"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=device-grant test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dg_tls/ca.key" -out "$dg_tls/ca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$dg_tls/server.key" -out "$dg_tls/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$dg_tls/server.ext"
  openssl x509 -req -in "$dg_tls/server.csr" -CA "$dg_tls/ca.pem" -CAkey "$dg_tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dg_tls/server.ext" -out "$dg_tls/server.crt" 2>/dev/null
  # The server refuses a key that others can read.
  chmod 600 "$dg_tls/server.key" "$dg_tls/ca.key"
  chown -R postgres:postgres "$dg_tls"
}

dg_redis_up() {
  command -v redis-cli >/dev/null 2>&1 &&
    [ "$(redis-cli -h 127.0.0.1 -p "$dg_redis_port" ping 2>/dev/null)" = "PONG" ]
}

dg_cluster_ports="${DEVICE_GRANT_REDIS_CLUSTER_PORTS:-7301 7302 7303 7304 7305 7306}"

dg_cluster_up() {
  local port
  command -v redis-cli >/dev/null 2>&1 || return 1
  for port in $dg_cluster_ports; do
    redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

# Six nodes, no persistence; formed into a cluster once every node answers.
# A node left from an earlier run with another cluster's configuration is
# reset first, so a half-made cluster heals on the next run.
dg_cluster_start() {
  local port nodes=""
  for port in $dg_cluster_ports; do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" != "PONG" ]; then
      mkdir -p "$dg_state/cluster-$port"
      rm -f "$dg_state/cluster-$port/nodes.conf"
      redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
        --cluster-enabled yes --cluster-config-file "$dg_state/cluster-$port/nodes.conf" \
        --cluster-node-timeout 2000 --save '' --appendonly no --dir "$dg_state/cluster-$port" \
        --logfile "$dg_state/cluster-$port/redis.log" --pidfile "$dg_state/cluster-$port/redis.pid"
    fi
    nodes="$nodes 127.0.0.1:$port"
  done
  for port in $dg_cluster_ports; do
    for _ in $(seq 1 50); do
      [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ] && break
      sleep 0.1
    done
  done
  for port in $dg_cluster_ports; do
    redis-cli -h 127.0.0.1 -p "$port" flushall >/dev/null 2>&1 || true
    redis-cli -h 127.0.0.1 -p "$port" cluster reset hard >/dev/null 2>&1 || true
  done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dg_state/cluster-create.log" 2>&1 || true
  for _ in $(seq 1 100); do
    if dg_cluster_up; then break; fi
    sleep 0.1
  done
  if ! dg_cluster_up; then
    echo "WARNING: the redis cluster did not form; see $dg_state/cluster-create.log" >&2
  fi
}

dg_pair_primary="${DEVICE_GRANT_REDIS_PAIR_PORTS:-6392 6393}"
dg_pair_replica="${dg_pair_primary#* }"
dg_pair_primary="${dg_pair_primary%% *}"

dg_role() {
  redis-cli -h 127.0.0.1 -p "$1" role 2>/dev/null | head -n 1
}

# The pair's primary and its replica, started if need be, and put back in
# those roles if a failover test left them otherwise. DEBUG is allowed from
# loopback: the tests stall the replica with DEBUG SLEEP.
dg_pair_start() {
  local port
  for port in "$dg_pair_primary" "$dg_pair_replica"; do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" != "PONG" ]; then
      mkdir -p "$dg_state/pair-$port"
      redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
        --save '' --appendonly no --dir "$dg_state/pair-$port" --enable-debug-command local \
        --logfile "$dg_state/pair-$port/redis.log" --pidfile "$dg_state/pair-$port/redis.pid"
      for _ in $(seq 1 50); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ] && break
        sleep 0.1
      done
    fi
  done
  [ "$(dg_role "$dg_pair_primary")" = "master" ] ||
    redis-cli -h 127.0.0.1 -p "$dg_pair_primary" replicaof no one >/dev/null || true
  [ "$(dg_role "$dg_pair_replica")" = "slave" ] ||
    redis-cli -h 127.0.0.1 -p "$dg_pair_replica" replicaof 127.0.0.1 "$dg_pair_primary" >/dev/null || true
  for _ in $(seq 1 100); do
    redis-cli -h 127.0.0.1 -p "$dg_pair_primary" info replication 2>/dev/null |
      grep -q '^connected_slaves:1' && return 0
    sleep 0.1
  done
  echo "WARNING: the redis replica on $dg_pair_replica did not connect; see $dg_state/pair-*/redis.log" >&2
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
    # A data directory from an earlier run may say ssl = on: the files first.
    dg_pg_tls_files
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

if ! dg_cluster_up; then
  mkdir -p "$dg_state"
  dg_cluster_start
fi
if command -v redis-server >/dev/null 2>&1; then
  dg_pair_start
fi

if dg_pg_up; then
  if ! psql -h 127.0.0.1 -p "$dg_pg_port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'device_grant_test'" | grep -q 1; then
    psql -q -h 127.0.0.1 -p "$dg_pg_port" -U postgres -c "CREATE DATABASE device_grant_test" >/dev/null
  fi
  # TLS, also for a server started earlier without it: ALTER SYSTEM (kept in
  # the data directory) and a reload, which needs no restart.
  dg_pg_tls_files
  dg_pg_ssl() {
    psql -h 127.0.0.1 -p "$dg_pg_port" -U postgres -tAc \
      "SELECT current_setting('ssl') || ' ' || current_setting('ssl_cert_file')" 2>/dev/null
  }
  if [ "$(dg_pg_ssl)" != "on $dg_tls/server.crt" ]; then
    psql -q -h 127.0.0.1 -p "$dg_pg_port" -U postgres \
      -c "ALTER SYSTEM SET ssl_cert_file = '$dg_tls/server.crt'" \
      -c "ALTER SYSTEM SET ssl_key_file = '$dg_tls/server.key'" \
      -c "ALTER SYSTEM SET ssl = on" \
      -c "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 50); do
      if [ "$(dg_pg_ssl)" = "on $dg_tls/server.crt" ]; then break; fi
      sleep 0.1
    done
    if [ "$(dg_pg_ssl)" != "on $dg_tls/server.crt" ]; then
      echo "WARNING: postgresql did not turn TLS on; see $dg_state/pg.log" >&2
    fi
  fi
  unset -f dg_pg_ssl
fi

export DEVICE_GRANT_REDIS_URL="redis://127.0.0.1:$dg_redis_port/"
dg_cluster_hosts="$(for port in $dg_cluster_ports; do printf '127.0.0.1:%s,' "$port"; done)"
export DEVICE_GRANT_REDIS_CLUSTER_URL="redis+cluster://${dg_cluster_hosts%,}/"
export DEVICE_GRANT_REDIS_PAIR="redis://127.0.0.1:$dg_pair_primary/,redis://127.0.0.1:$dg_pair_replica/"
export DEVICE_GRANT_POSTGRES_URL="postgres://postgres@127.0.0.1:$dg_pg_port/device_grant_test"
export DEVICE_GRANT_POSTGRES_CA="$dg_tls/ca.pem"
echo "redis: $DEVICE_GRANT_REDIS_URL  redis cluster: $DEVICE_GRANT_REDIS_CLUSTER_URL"
echo "postgres: $DEVICE_GRANT_POSTGRES_URL (TLS CA: $DEVICE_GRANT_POSTGRES_CA)"
unset -f dg_pg_bin dg_redis_up dg_pg_up dg_pg_tls_files dg_cluster_up dg_cluster_start
unset -f dg_role dg_pair_start
unset dg_pair_primary dg_pair_replica dg_cluster_ports dg_cluster_hosts dg_redis_port dg_pg_port dg_state dg_pg_data dg_bin dg_tls
