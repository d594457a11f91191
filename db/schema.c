/* The schema of airlock.db, as a list of migrations (see db-private.h).
 *
 * Times are REAL epoch seconds (al_now()). Digests are "sha256:<hex>"
 * text, validated by the C code before they are bound. Foreign keys are a
 * backstop: al_db_graph_commit checks blob presence itself so that it can
 * say which blob is missing. */
#include "db-private.h"

const char *const al_db_migrations[] = {
    /* 0 -> 1: initial schema */
    "CREATE TABLE blobs ("
    "  digest     TEXT PRIMARY KEY NOT NULL,"
    "  size       INTEGER NOT NULL CHECK (size >= 0),"
    "  media_type TEXT,"
    "  added_at   REAL NOT NULL"
    ");"
    "CREATE TABLE manifests ("
    "  digest        TEXT PRIMARY KEY NOT NULL REFERENCES blobs(digest),"
    "  media_type    TEXT NOT NULL,"
    "  is_index      INTEGER NOT NULL CHECK (is_index IN (0, 1)),"
    "  os            TEXT,"
    "  arch          TEXT,"
    "  variant       TEXT,"
    "  config_digest TEXT REFERENCES blobs(digest)" /* NULL for indexes */
    ");"
    "CREATE TABLE edges ("
    "  parent_digest TEXT NOT NULL REFERENCES manifests(digest),"
    "  child_digest  TEXT NOT NULL REFERENCES blobs(digest),"
    "  kind          TEXT NOT NULL CHECK (kind IN ('manifest', 'config', 'layer')),"
    "  position      INTEGER NOT NULL,"
    "  PRIMARY KEY (parent_digest, kind, position)"
    ");"
    /* "which graphs use this blob" (gc, verify) */
    "CREATE INDEX edges_child ON edges(child_digest);"
    "CREATE TABLE runs ("
    "  id            INTEGER PRIMARY KEY,"
    "  started_at    REAL NOT NULL,"
    "  finished_at   REAL,"
    "  argv          TEXT,"
    "  images_ok     INTEGER,"
    "  images_failed INTEGER,"
    "  bytes         INTEGER"
    ");"
    "CREATE TABLE tags ("
    "  full_name  TEXT PRIMARY KEY NOT NULL,"
    "  digest     TEXT NOT NULL REFERENCES blobs(digest),"
    "  media_type TEXT NOT NULL,"
    "  size       INTEGER NOT NULL,"
    "  source     TEXT,"
    "  first_seen REAL NOT NULL,"
    "  checked_at REAL NOT NULL,"
    "  changed_at REAL NOT NULL"
    ");"
    "CREATE TABLE tag_history ("
    "  id         INTEGER PRIMARY KEY,"
    "  full_name  TEXT NOT NULL,"
    "  old_digest TEXT," /* NULL: the tag was first seen */
    "  new_digest TEXT NOT NULL,"
    "  at         REAL NOT NULL,"
    "  run_id     INTEGER REFERENCES runs(id)"
    ");"
    "CREATE INDEX tag_history_name ON tag_history(full_name, id);",

    /* 1 -> 2: the store's id, and the bundles applied to it (db-bundle.c).
     * A store created from now on gets its id here too, as its database is
     * made by running every migration. randomblob() is SQLite's PRNG,
     * seeded from the system's randomness. */
    "CREATE TABLE store_meta ("
    "  key   TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL"
    ");"
    "INSERT INTO store_meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));"
    "CREATE TABLE bundles ("
    "  bundle_id    TEXT PRIMARY KEY NOT NULL,"
    "  source_store TEXT NOT NULL,"
    "  base_bundle  TEXT," /* NULL: a bundle built on none */
    "  created_at   REAL NOT NULL,"
    "  applied_at   REAL NOT NULL,"
    "  run_id       INTEGER REFERENCES runs(id),"
    "  tags         INTEGER NOT NULL,"
    "  blobs        INTEGER NOT NULL,"
    "  bytes        INTEGER NOT NULL"
    ");"
    "CREATE INDEX bundles_source ON bundles(source_store, created_at);",

    /* 2 -> 3: what a fetch's walk of a tag's graph found (db.h,
     * al_tag_walk): a nightly run skips the walk of a tag whose digest and
     * selection did not change. NULL until a fetch walks the tag; cleared
     * whenever the tag moves. */
    "ALTER TABLE tags ADD COLUMN walk_selection TEXT;"
    "ALTER TABLE tags ADD COLUMN walk_platforms TEXT;"
    "ALTER TABLE tags ADD COLUMN walk_blobs INTEGER;",
};

const size_t al_db_n_migrations = sizeof(al_db_migrations) / sizeof(al_db_migrations[0]);
