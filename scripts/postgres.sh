#!/usr/bin/env bash
# Starts the machine's PostgreSQL 15 (Debian cluster 15/main) if it is not
# running, and makes sure a `madoguchi` role that may create databases
# exists. Prints the URL for MADOGUCHI_TEST_POSTGRES_URL on stdout.
# Fails loudly: the test suite must never silently run without PostgreSQL.
set -euo pipefail

PGPORT="${PGPORT:-5432}"
URL="postgres://madoguchi:madoguchi@127.0.0.1:${PGPORT}/postgres"

if [ -n "${MADOGUCHI_TEST_POSTGRES_URL:-}" ]; then
  echo "$MADOGUCHI_TEST_POSTGRES_URL"
  exit 0
fi

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql-15)" >&2
  exit 1
fi

if ! pg_lsclusters -h | awk '$1=="15" && $2=="main" {print $4}' | grep -q online; then
  if [ "$(id -u)" -eq 0 ]; then
    pg_ctlcluster 15 main start >&2
  else
    sudo -n pg_ctlcluster 15 main start >&2
  fi
fi

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi
}

for _ in $(seq 1 50); do
  if as_postgres psql -qAtc 'select 1' >/dev/null 2>&1; then break; fi
  sleep 0.2
done
as_postgres psql -v ON_ERROR_STOP=1 -qAt >&2 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'madoguchi') THEN
    CREATE ROLE madoguchi LOGIN CREATEDB CREATEROLE PASSWORD 'madoguchi';
  END IF;
  -- The cluster tests give each service a role of its own, as in k8s/.
  ALTER ROLE madoguchi CREATEROLE;
END
$$;
SQL
# With --drop-test-databases: drop the databases earlier test runs left
# (each test creates its own, madoguchi_test_*, and nothing drops them while
# the run goes on). Hundreds of leftovers keep autovacuum busy visiting
# each one, which a 2-core machine feels in every test and benchmark. Only
# scripts/test.sh asks for it, before its run starts.
if [ "${1:-}" = "--drop-test-databases" ]; then
  as_postgres psql -v ON_ERROR_STOP=1 -qAt >&2 <<'SQL'
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', datname)
FROM pg_database WHERE datname LIKE 'madoguchi\_test\_%'
\gexec
SELECT format('DROP ROLE IF EXISTS %I', rolname)
FROM pg_roles WHERE rolname LIKE 'mdg\_test\_%'
\gexec
SQL
fi
echo "$URL"
