#!/usr/bin/env bash
# Static checks CI fails on: go.mod tidy, gofmt, go vet and golangci-lint
# (a pinned version, installed into .cache/bin on first use; config in .golangci.yml),
# and the OpenAPI document linted by Redocly's recommended ruleset (Node from
# Debian's apt when npx is missing; no redocly.yaml, so no rule is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

lint_version=v2.15.0
bin=$PWD/.cache/bin
if [ "$("$bin/golangci-lint" version --short 2>/dev/null)" != "${lint_version#v}" ]; then
  echo "ops/lint.sh: installing golangci-lint $lint_version" >&2
  GOBIN=$bin GOFLAGS= go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$lint_version"
fi

go mod tidy -diff || { echo "ops/lint.sh: go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "ops/lint.sh: gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
"$bin/golangci-lint" run ./...

if ! command -v npx >/dev/null; then
  echo "ops/lint.sh: installing nodejs and npm (for the OpenAPI lint)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
npx --yes @redocly/cli@2.77.0 lint --format=summary docs/openapi.yaml
