#!/bin/sh
# The read-only role Grafana reads a region store with (deploy/compose/grafana/).
#
# docker-compose.yml mounts this file into each region database at
# /docker-entrypoint-initdb.d/100_grafana_reader.sh. The image's entrypoint runs it once, when the data
# directory is empty, after TimescaleDB's own 000_/001_ scripts and before the ingest exists: the tables
# it will read do not exist yet. So the grants are *default privileges* of the role that will create
# them (POSTGRES_USER, which the ingest connects as and runs its migrations with): every table, view and
# continuous aggregate it creates later in schema public is readable by grafana_reader. Tables that
# already exist (when run by hand on an existing volume) are granted too. Safe to run again.
#
# What the role can do: connect, and SELECT; every transaction is read-only and every statement stops
# after 30 s (a dashboard over a long range cannot hold a region store). What it cannot: write, create,
# or read another database. Note that it can read every table of the store, quarantine_payloads
# included (payloads the policy lets live in this region); revoke that if Grafana users should not:
#   REVOKE SELECT ON quarantine_payloads FROM grafana_reader;   (after the ingest's first start)
#
# By hand, on a database initialised before this script existed:
#   docker compose exec db-eu-central sh /docker-entrypoint-initdb.d/100_grafana_reader.sh
#
# Environment: POSTGRES_USER, POSTGRES_DB (the image's) and GRAFANA_READER_PASSWORD (docker-compose.yml).
# psql variables carry the values, so quotes in the password cannot break the SQL. Sourced or executed
# by the entrypoint alike: no `set`, no `exit`; psql's non-zero status fails the initialisation.

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:?}" --dbname "${POSTGRES_DB:?}" \
    -v reader_password="${GRAFANA_READER_PASSWORD:?GRAFANA_READER_PASSWORD is not set}" \
    -v owner="${POSTGRES_USER}" -v dbname="${POSTGRES_DB}" <<'SQL'
SELECT 'CREATE ROLE grafana_reader'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') \gexec
ALTER ROLE grafana_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'reader_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"dbname" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
