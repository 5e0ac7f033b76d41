#!/usr/bin/env bash
# Lint, type-check, then run every test against the real Kafka and PostgreSQL.
# Starts the local services if they are not running, and stops (only) those it started.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export OCDS_LIVE_SCHEMA_DIR="${OCDS_LIVE_SCHEMA_DIR:-$(cd .. && pwd)/shared/ocds/1.1.5}"
export OCDS_LIVE_OC4IDS_DIR="${OCDS_LIVE_OC4IDS_DIR:-$(cd .. && pwd)/shared/oc4ids/0.9.4}"

started=""
if ! $BIN/ocds-live services status >/dev/null 2>&1; then
  started=yes
  $BIN/ocds-live services up || { echo "test.sh: the services did not start" >&2; $BIN/ocds-live services down; exit 1; }
fi
cleanup() { [ -n "$started" ] && $BIN/ocds-live services down >/dev/null; }
trap cleanup EXIT

status=0
echo "== ruff";  $BIN/ruff check . || status=1
echo "== mypy";  $BIN/mypy . || status=1
echo "== pytest"; $BIN/pytest "$@" || status=1
exit $status
