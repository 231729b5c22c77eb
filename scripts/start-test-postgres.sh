#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster for the database tests and makes sure the role
# they use exists: berth / berth with CREATEDB, on 127.0.0.1:5432 (the default of
# test/helpers/postgres.ts). Run as root after `apt-get install postgresql`; .ci/run
# calls it. Idempotent: safe to run when the cluster is already up.
set -euo pipefail

ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if [ -z "$ver" ]; then
  echo "start-test-postgres: Debian's postgresql is not installed (apt-get install postgresql)" >&2
  exit 1
fi
# postgresql-common makes the "main" cluster at install time; make it if it is gone.
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
  pg_createcluster "$ver" main
fi
if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
  pg_ctlcluster "$ver" main start
fi
for _ in $(seq 1 50); do
  runuser -u postgres -- pg_isready -q && break
  sleep 0.2
done
runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -d postgres <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth') THEN
    CREATE ROLE berth LOGIN CREATEDB PASSWORD 'berth';
  END IF;
END
$$;
SQL
echo "start-test-postgres: PostgreSQL $ver up; tests use postgresql://berth:berth@127.0.0.1:5432/postgres"
