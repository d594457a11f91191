/* --since FILE: "the far side already holds these digests".
 *
 * One reader per kind of file, tried in turn on the file's content (never
 * its name); each yields (name, digest) pairs the far side holds:
 *
 *   lock     airlock-fetch --lock (or any list whose lines are pinned,
 *            NAME:TAG@DIGEST): each line's name and root digest
 *   report   an airlock-export --json run report: the images it exported
 *            (root and platform manifest digests) and those that it left
 *            out because its own --since said the far side had them
 *   inventory  airlock-export --list --json run on the far store: its
 *            complete tags
 *   bundle   a bundle's manifest (OUT.json, or the bundle itself: its
 *            airlock-bundle.json member): what the far side holds once that
 *            bundle is applied; its id and source store are kept, for the
 *            next bundle to name as its base
 * An image is held when an entry has its digest
 * (its root or its platform manifest) under its name, or under no name. */
#ifndef AL_EXPORT_SINCE_H
#define AL_EXPORT_SINCE_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/bundle.h"
#include "../common/digest.h"
#include "../common/error.h"

/* A --since file larger than this is refused. */
#define AL_SINCE_MAX (64u << 20)

typedef struct al_since_entry {
    char *name; /* "docker.io/library/busybox:1.36" (name:tag), or NULL: any name */
    char digest[AL_DIGEST_BUF];
} al_since_entry;

typedef struct al_since {
    char *path;
    const char *kind; /* "lock", "report", "inventory", "bundle" (static) */
    al_since_entry *entries;
    size_t n;
    /* kind "bundle": the bundle's id and the store it was made from. */
    char bundle_id[AL_BUNDLE_ID_BUF];
    char source_store[AL_BUNDLE_ID_BUF];
} al_since;

/* Read FILE. AL_E_USAGE (exit 2) when it is none of the kinds above or a
 * line is not pinned: "FILE:3: ...". */
int al_since_load(al_since *out, const char *path, al_error **err);
void al_since_dispose(al_since *s);

/* name: "docker.io/library/busybox:1.36" (no digest). digest may be NULL. */
bool al_since_holds(const al_since *s, const char *name, const char *digest);

/* The name an entry is keyed by for a reference text: "NAME:TAG", or
 * "NAME" for a digest-only ref (malloc'd); NULL when text is no ref. */
char *al_since_key(const char *ref_text);

#endif
