#!/usr/bin/env bash
# Measures what one ticket change costs, side effects included, on a
# throwaway PostgreSQL cluster of its own (so that the backend CPU counted is
# PatchDesk's only, even while other work uses the shared cluster), and in
# the same minute pgbench TPC-B (8 clients) on that same cluster, for scale.
#
#   ops/cost.sh                 # 3,000 creates, 16 clients, 4 tenants, then list
#   REQUESTS=1000 CLIENTS=8 ops/cost.sh
#   SERVER_BIN=/tmp/patchdesk-before ops/cost.sh   # measure another build's server
#
# Prints the bench table (throughput, latency), the cost table (server and
# PostgreSQL CPU, transactions, statements and WAL per operation, drain time)
# with each phase's costliest statements, and pgbench's figures.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-3000}
CLIENTS=${CLIENTS:-16}
TENANTS=${TENANTS:-4}
OPS=${OPS:-create,list}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-20}

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/pdcost.XXXXXX)
chmod 711 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
httpport=$(free_port)
kport=$(free_port)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  as_pg "$bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pg" "$work/data"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_pg "$bin/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg" -w -l "$work/pg/server.log" -o "-c port=$pgport -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories=$work/pg -c max_connections=200 -c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track=top -c pg_stat_statements.track_planning=on -c shared_buffers=256MB" start >/dev/null
psql() { "$bin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -qAt "$@"; }
psql -c "CREATE DATABASE patchdesk" postgres
psql -c "CREATE DATABASE pgbench" postgres
db="postgres://postgres@127.0.0.1:$pgport/patchdesk?sslmode=disable"

go build -o "$work/patchdesk" ./cmd/patchdesk
# SERVER_BIN runs another build as the server (e.g. the commit before a
# change, for a before/after in the same minute); the bench is always this one.
server_bin=${SERVER_BIN:-$work/patchdesk}
"$server_bin" serve --database-url "$db" --addr "127.0.0.1:$httpport" --kafka-addr "127.0.0.1:$kport" \
  --data-dir "$work/data" --metrics-addr "" --signups-per-minute 1000 --token-per-minute 10000000 --tenant-per-minute 10000000 --log-format json >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$httpport/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fs "http://127.0.0.1:$httpport/readyz" >/dev/null || { tail -n 30 "$work/server.log"; exit 1; }

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# patchdesk bench --ops $OPS --requests $REQUESTS --clients $CLIENTS --tenants $TENANTS (own cluster on :$pgport)"
"$work/patchdesk" bench --url "http://127.0.0.1:$httpport" --ops "$OPS" --requests "$REQUESTS" --duration 10m \
  --clients "$CLIENTS" --tenants "$TENANTS" --server-pid "$server" --pg-data "$work/pg" --pg-url "$db" \
  --brokers "127.0.0.1:$kport"

# pgbench TPC-B on the same cluster, PostgreSQL CPU per transaction from
# /proc the same way the bench counts it (postmaster, children, reaped children).
pm=$(head -n 1 "$work/pg/postmaster.pid")
cluster_ticks() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{ pid = $1; sub(/^.*\) /, ""); split($0, f, " ");
      if (pid == pm || f[2] == pm) t += f[12] + f[13] + f[14] + f[15] } END { print t }'
}
"$bin/pgbench" -h 127.0.0.1 -p "$pgport" -U postgres -i -q -s 10 pgbench >/dev/null 2>&1
before=$(cluster_ticks)
out=$("$bin/pgbench" -h 127.0.0.1 -p "$pgport" -U postgres -c 8 -j 2 -T "$PGBENCH_SECONDS" -b tpcb-like pgbench 2>&1)
after=$(cluster_ticks)
tx=$(echo "$out" | awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}')
tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
lat=$(echo "$out" | awk '/latency average/ {print $4}')
echo
echo "# pgbench TPC-B, 8 clients, ${PGBENCH_SECONDS}s, same cluster: $tx transactions, $tps tps, latency avg $lat ms"
awk -v a="$after" -v b="$before" -v n="$tx" 'BEGIN { printf "# PostgreSQL CPU per TPC-B transaction: %.3f ms\n", (a - b) * 10 / n }'
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
