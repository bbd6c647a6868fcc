#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for
# local TCP clients (development and tests only). If none answers, it installs
# PostgreSQL with apt when missing, opens local trust auth and starts the cluster.
set -euo pipefail

host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}

ready() { command -v pg_isready >/dev/null && pg_isready -q -h "$host" -p "$port"; }

# Tier moves copy tenants with logical replication, which needs
# wal_level=logical, enough replication workers for moves running side by
# side, and a short launcher retry (its 5 s default delays a move that starts
# right after another one finished). Parallel test packages each open a
# few pools, so the default 100 connections is raised.
ensure_logical() {
  settings=$(psql -h "$host" -p "$port" -U postgres -Atc "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)
    FROM pg_settings WHERE name IN ('wal_level', 'max_logical_replication_workers', 'max_worker_processes', 'wal_retrieve_retry_interval', 'max_replication_slots', 'max_wal_senders', 'max_connections')" postgres)
  want="max_connections=300 max_logical_replication_workers=8 max_replication_slots=20 max_wal_senders=20 max_worker_processes=16 wal_level=logical wal_retrieve_retry_interval=200"
  if [ "$settings" != "$want" ]; then
    echo "ops/postgres.sh: configuring logical replication ($want) and restarting PostgreSQL" >&2
    for kv in $want; do
      psql -h "$host" -p "$port" -U postgres -qc "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" postgres
    done
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 60); do
      ready && return 0
      sleep 0.5
    done
    echo "ops/postgres.sh: PostgreSQL did not come back after the restart" >&2
    return 1
  fi
}

if ready; then
  ensure_logical
  exit 0
fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "ops/postgres.sh: installing PostgreSQL with apt" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
conf=/etc/postgresql/$version/main
if ! grep -q '# patchdesk: local trust' "$conf/pg_hba.conf"; then
  # Local development cluster: trust TCP clients on loopback, as the tests expect.
  {
    echo '# patchdesk: local trust'
    echo 'host all all 127.0.0.1/32 trust'
    echo 'host all all ::1/128 trust'
    cat "$conf/pg_hba.conf"
  } > "$conf/pg_hba.conf.new"
  mv "$conf/pg_hba.conf.new" "$conf/pg_hba.conf"
fi

pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main restart

for _ in $(seq 1 60); do
  if ready; then
    ensure_logical
    exit 0
  fi
  sleep 0.5
done
echo "ops/postgres.sh: PostgreSQL did not come up on $host:$port" >&2
exit 1
