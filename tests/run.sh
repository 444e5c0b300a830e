#!/usr/bin/env bash
# Runs the whole suite: on SQLite + locmem (the embedded default), then, when PostgreSQL is
# reachable (always under CI=true), again on PostgreSQL; then django-redis's own test suite against
# its backend and ours (tests/django_redis_suite; whole runs only: arguments select pytest tests).
# Under CI=true a missing service fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PG_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"

export TEST_REDIS_URL="$REDIS"

echo "== suite on SQLite + locmem"
env -u DATABASE_URL -u REDIS_URL "$BIN/pytest" "$@"

if "$BIN/python" - "$PG_URL" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL unreachable at {sys.argv[1]}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
then
    echo "== suite on PostgreSQL"
    DATABASE_URL="$PG_URL" "$BIN/pytest" "$@"
elif [ "${CI:-}" = "true" ]; then
    echo "FAIL: CI=true and PostgreSQL is not reachable at $PG_URL" >&2
    exit 1
else
    echo "!! SKIPPED the PostgreSQL run: no server at $PG_URL (CI=true makes this a failure)" >&2
fi

if [ "$#" -eq 0 ]; then
    echo "== django-redis's own test suite, on its backend and on ours"
    "$BIN/python" -m tests.django_redis_suite
fi
