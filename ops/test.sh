#!/usr/bin/env bash
# Runs the whole PatchDesk test suite against a local PostgreSQL (started by
# ops/postgres.sh when none answers): the static checks of ops/lint.sh, then
# go test -race. Every test creates and drops its own database. At the end it
# prints how many responses the HTTP test helpers validated against
# docs/openapi.yaml (modules/api/apitest appends each test server's count to
# PATCHDESK_CONTRACT_COUNT_FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
ops/postgres.sh
# The ops kit's tests run promtool and a real Prometheus server (Debian's
# prometheus package). Installed when missing, without starting its system
# service: the tests run the binary themselves on a free loopback port.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "ops/test.sh: installing Debian's prometheus package" >&2
  policy=/usr/sbin/policy-rc.d
  had_policy=false
  [ -e "$policy" ] && had_policy=true
  $had_policy || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  $had_policy || rm -f "$policy"
fi
ops/lint.sh
if ! command -v chromium >/dev/null; then
  echo "ops/test.sh: installing chromium (the API reference page is checked in a real browser)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
status=0
PATCHDESK_CONTRACT_COUNT_FILE=$counts go test -race -count=1 -timeout 25m ./... "$@" || status=$?
echo "contract: $(awk '{n += $1} END {print n + 0}' "$counts") responses validated against docs/openapi.yaml"
exit "$status"
