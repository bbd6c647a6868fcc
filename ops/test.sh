#!/usr/bin/env bash
# Runs the whole PatchDesk test suite against a local PostgreSQL (started by
# ops/postgres.sh when none answers): the static checks of ops/lint.sh, then
# go test -race. Every test creates and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/postgres.sh
ops/lint.sh
go test -race -count=1 -timeout 25m ./... "$@"
