#!/bin/sh
# One-shot PostgreSQL schema setup for the compose Temporal server, run by the `temporal-schema`
# service with `temporal-sql-tool` from the admin-tools image (the server image does not set up
# its own schema). Both databases already exist: PostgreSQL creates `temporal` (its user's
# database) and `deploy/postgres/init-visibility.sql` creates `temporal_visibility` on first start.
# `setup-schema -v 0.0` leaves a schema that is already past 0.0 alone and `update-schema` applies
# only the versions not yet applied, so this is safe on every `docker compose up` and upgrades the
# schema when the image version is raised.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
SCHEMA=/etc/temporal/schema/postgresql/v12

for db in temporal:temporal temporal_visibility:visibility; do
    name="${db%%:*}"
    dir="${db#*:}"
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" \
        --db "$name" setup-schema -v 0.0
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" \
        --db "$name" update-schema -d "$SCHEMA/$dir/versioned"
    echo "temporal-schema: $name is up to date"
done
