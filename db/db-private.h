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

#endif
