/* Internals of db/: the migration list shared by db.c and schema.c. */
#ifndef AL_DB_PRIVATE_H
#define AL_DB_PRIVATE_H

#include <stddef.h>

#include <sqlite3.h>

#include "db.h"

/* al_db_migrations[i] takes a database from user_version i to i + 1.
 * Append only: never edit a migration that has shipped. */
extern const char *const al_db_migrations[];
extern const size_t al_db_n_migrations;

/* The connection of db (borrowed), for the queries in db-query.c. */
sqlite3 *al_db_sqlite(al_db *db);

/* The oldest schema a read-only open accepts. Migration 2 added only the
 * tables of bundles (store_meta, bundles), which the bundle writer asks
 * for by name (al_db_store_id says when they are absent): an export from
 * a store that no airlock-fetch has upgraded yet, or from a read-only
 * copy of one, keeps working. */
#define AL_DB_MIN_READ_VERSION 1

/* al_db_graph_commit's work without its transaction: for db-bundle.c,
 * which applies several graphs and more in one. */
int al_db_graph_apply(al_db *db, const al_graph *g, int64_t run_id, char moved[AL_DIGEST_BUF],
                      al_error **err);

#endif
