#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory.
# Each service connects as its own role (gpulab_<service>), which owns nothing: the migrate jobs
# (as the owner, POSTGRES_USER) grant it DML on its own schema after each migration, and no role
# may use another service's schema (docs/adr/0009). The gateway has no role: it holds no
# database credentials. With an existing volume, run this once by hand with the same variables.
set -eu
for service in identity pki inventory scheduler notify; do
  var="GPULAB_POSTGRES_$(echo "$service" | tr a-z A-Z)_PASSWORD"
  password=$(printenv "$var") || { echo "$var is not set" >&2; exit 1; }
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="gpulab_$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SQL
done
# Nobody but the owner creates objects in `public` (PostgreSQL 15+ already says so).
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
