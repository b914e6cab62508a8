#!/usr/bin/env bash
# FerretDB v1.24 on PostgreSQL: give PostgreSQL indexes it can use for FerretDB's equality
# filters (`_jsonb -> 'field' @> value`), GIN indexes mirroring the btree ones FerretDB made
# for the services' create_index calls (see scripts/lib/ferretdb_gin_indexes.sql for why).
# Without them every read-model query, even by _id, scans its whole collection.
#
#   scripts/ferretdb-indexes.sh [database ...]     (none: every database FerretDB manages)
#
# Idempotent; run it after the services have created their collections and indexes (a new
# collection or index needs another run). CASEWORK_FERRETDB_POSTGRESQL_URL names the
# PostgreSQL behind FerretDB (default: the local one of scripts/infra.sh). Not needed on
# MongoDB, whose own indexes serve the same queries.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPTS_DIR/lib/common.sh"

url="${CASEWORK_FERRETDB_POSTGRESQL_URL:-postgres://postgres@127.0.0.1:$PG_PORT/ferretdb}"
schemas="$(IFS=,; echo "$*")"
rc=0
out="$(psql "$url" -X -q -v ON_ERROR_STOP=1 -v schemas="$schemas" \
    -f "$SCRIPTS_DIR/lib/ferretdb_gin_indexes.sql" 2>&1)" || rc=$?
grep -v 'already exists, skipping' <<<"$out" || true
exit "$rc"
