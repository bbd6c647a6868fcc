#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for
# local TCP clients (development and tests only). If none answers, it installs
# PostgreSQL with apt when missing, opens local trust auth and starts the cluster.
set -euo pipefail

host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}

ready() { command -v pg_isready >/dev/null && pg_isready -q -h "$host" -p "$port"; }

# Tier moves copy tenants with logical replication, which needs wal_level=logical.
ensure_logical() {
  level=$(psql -h "$host" -p "$port" -U postgres -Atc 'SHOW wal_level' postgres)
  if [ "$level" != "logical" ]; then
    echo "ops/postgres.sh: setting wal_level=logical and restarting PostgreSQL" >&2
    psql -h "$host" -p "$port" -U postgres -qc 'ALTER SYSTEM SET wal_level = logical' postgres
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
