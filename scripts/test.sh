#!/usr/bin/env bash
# Lint, type-check, then run every test against the real Kafka and PostgreSQL; then scan the run's logs
# for the tokens the tests used, and audit the installed dependencies for known vulnerabilities.
# Starts the local services if they are not running, and stops (only) those it started.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export OCDS_LIVE_SCHEMA_DIR="${OCDS_LIVE_SCHEMA_DIR:-$(cd .. && pwd)/shared/ocds/1.1.5}"
export OCDS_LIVE_EXTENSIONS_DIR="${OCDS_LIVE_EXTENSIONS_DIR:-$(cd .. && pwd)/shared/ocds/extensions}"
export OCDS_LIVE_OC4IDS_DIR="${OCDS_LIVE_OC4IDS_DIR:-$(cd .. && pwd)/shared/oc4ids/0.9.4}"

started=""
if ! $BIN/ocds-live services status >/dev/null 2>&1; then
  started=yes
  $BIN/ocds-live services up || { echo "test.sh: the services did not start" >&2; $BIN/ocds-live services down; exit 1; }
fi
run=$(mktemp -d)  # this run's pytest output and temporary folders (the logs the secrets scan reads)
cleanup() { [ -n "$started" ] && $BIN/ocds-live services down >/dev/null; rm -rf "$run"; }
trap cleanup EXIT

status=0
echo "== ruff";  $BIN/ruff check . || status=1
echo "== mypy";  $BIN/mypy . || status=1
echo "== pytest"
$BIN/pytest --basetemp="$run/tmp" "$@" 2>&1 | tee "$run/pytest.out"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "== secrets: no test token in any log of this run (servers', workers', pytest's)"
$BIN/python -m tests.support.secrets "$run" || status=1
echo "== pip-audit"; $BIN/python scripts/audit.py || status=1
exit $status
