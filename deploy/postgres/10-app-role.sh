#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory.
# The services connect as gpulab_app, which owns nothing: the migrate jobs (as the owner,
# POSTGRES_USER) grant it what it may do after each migration; see docs/adr/0009.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$GPULAB_POSTGRES_APP_PASSWORD" <<'SQL'
CREATE ROLE gpulab_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
SQL
