#!/usr/bin/env bash
# Runs PatchDesk with its embedded defaults and a demo tenant, against a local
# PostgreSQL (started by ops/postgres.sh when none answers).
set -euo pipefail
cd "$(dirname "$0")/.."
ops/postgres.sh
exec go run ./cmd/patchdesk serve --demo "$@"
