#!/bin/sh
# Run once by the postgres image, on an empty volume, as its superuser (docker-entrypoint-initdb.d), and by the
# tests against their own cluster. It gives MLflow what it needs and no more: a role without superuser rights
# that owns MLflow's two databases, for runs and the registry, and for users and permissions (basic_auth.ini).
set -eu
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 -v password="$MLFLOW_DB_PASSWORD" --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
-- Nobody else may connect to them (PUBLIC can, by default).
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
SQL
