/* The image graph: index -> nested indexes -> image (platform) manifests
 * -> config + layers, and the one set of rules every walk of it follows
 * (fetch's plan, export's select, closure and verify, prune's SQL keeps the
 * same limit). docs/DESIGN.md, "The image graph", says the same in prose.
 *
 *   levels     the root is level 1; a manifest an index at level L lists is
 *              at level L + 1. Indexes may sit at levels 1 .. N
 *              (AL_GRAPH_MAX_INDEX_LEVELS), image manifests at 1 .. N + 1.
 *   kinds      a descriptor names an index, an image manifest or something
 *              else, by its media type (al_manifest_kind_from_media_type:
 *              case-insensitive, parameters ignored); an index entry without
 *              a media type names a manifest of either kind: its body says.
 *   agreement  a body is what its descriptor says: the same size, an index
 *              where an index is named and an image manifest where one is;
 *              an image manifest's config parses as an image config (a JSON
 *              object: al_image_config_parse, what export needs).
 *   children   an index's entries in order, each digest once: nested
 *              indexes always, image manifests whose platform is wanted (or
 *              not given: then their config says), "unknown/unknown"
 *              attestations only when asked, other media types never.
 *   order      parents first (depth-first, entries in index order), or
 *              children first (a manifest after everything it lists).
 *
 * Two ways in: the walk (al_graph_walk) over a source, and the single step
 * (al_graph_accept_manifest, al_graph_next, al_graph_accept_config) for a
 * caller that discovers the graph as responses arrive (fetch). */
#ifndef AL_GRAPH_H
#define AL_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "manifest.h"
#include "platform.h"
#include "store.h"

/* Index levels above an image manifest, the root being level 1: what
 * fetch followed before this module (8), and deeper than any registry
 * serves (buildx and docker write 1, a few tools 2). */
#define AL_GRAPH_MAX_INDEX_LEVELS 8

typedef enum {
    AL_GRAPH_OTHER = 0, /* not a manifest airlock follows (artifact, schema 1, a layer type) */
    AL_GRAPH_INDEX,     /* docker manifest list, OCI image index */
    AL_GRAPH_IMAGE,     /* docker v2 or OCI image manifest */
    AL_GRAPH_EITHER,    /* no media type: a manifest, the body says which */
} al_graph_kind;

/* The kind a media type names (NULL: AL_GRAPH_EITHER). */
al_graph_kind al_graph_kind_of(const char *media_type);

/* Which platforms to follow. */
typedef struct al_graph_select {
    const al_platform *platforms; /* borrowed; n_platforms == 0: every platform */
    size_t n_platforms;
    bool attestations; /* also "unknown/unknown" entries */
} al_graph_select;

/* True when an image manifest for p is to be followed. */
bool al_graph_platform_wanted(const al_graph_select *sel, const al_platform *p);

/* --- the single step ----------------------------------------------------- */

/* Accept the body of a manifest reached at `level` through descriptor d
 * (NULL for a root whose kind only the body says; d->size < 0: unknown).
 * The caller has verified its digest. content_type: the HTTP Content-Type
 * when the body came from a registry, else NULL (d's media type then helps
 * the parser). Refuses (AL_E_SIZE, AL_E_PARSE, AL_E_UNSUPPORTED) a size
 * other than d's, a body that does not parse, a kind other than d's, and
 * an index at a level above AL_GRAPH_MAX_INDEX_LEVELS. */
int al_graph_accept_manifest(al_manifest **out, const al_descriptor *d, int level, const void *body,
                             size_t len, const char *content_type, al_error **err);

/* The same rules for a manifest that is already parsed (a database row):
 * its kind against d's, its level. */
int al_graph_check_manifest(const al_descriptor *d, const al_manifest *m, int level,
                            al_error **err);

/* Accept an image manifest's config body (digest verified by the caller):
 * its size is the descriptor's and it parses as an image config. */
int al_graph_accept_config(al_image_config **out, const al_descriptor *config, const void *body,
                           size_t len, al_error **err);

/* The step: the entries of an accepted index `m` (digest `digest`, at
 * `level`) to visit next, as positions in m->children, in order, each
 * digest once (*out malloc'd, NULL when none). An image manifest entry
 * without a platform is listed: its config decides (al_graph_platform_wanted
 * once it is read). Fails (AL_E_UNSUPPORTED) when a listed entry is typed
 * as an index one level too deep, and (AL_E_PARSE) when the index lists
 * itself. */
int al_graph_next(size_t **out, size_t *n_out, const char *digest, const al_manifest *m, int level,
                  const al_graph_select *sel, al_error **err);

/* --- the walk ------------------------------------------------------------ */

/* Where the walk reads manifests and configs. */
typedef struct al_graph_source {
    /* The content of digest, at most cap bytes (AL_E_SIZE above that),
     * malloc'd into *out; AL_E_NOT_FOUND when the source lacks it. The
     * source vouches that it is the content of digest (the store hashes
     * what it reads); the walk still refuses cycles, which only a source
     * that breaks this promise (or a hand-edited database) can make. May
     * be NULL when `manifest` is set and configs are not read. */
    int (*read)(void *ud, const char *digest, size_t cap, char **out, size_t *len, al_error **err);
    /* Optional: a source of rows rather than bytes (the database snapshot)
     * gives the manifest d names already parsed; AL_E_NOT_FOUND when it has
     * none. When set, manifests are never read through `read`. */
    int (*manifest)(void *ud, const al_descriptor *d, al_manifest **out, al_error **err);
    void *ud;
} al_graph_source;

typedef enum { AL_GRAPH_PARENTS_FIRST = 0, AL_GRAPH_CHILDREN_FIRST } al_graph_order;

typedef enum {
    AL_GRAPH_VISITED, /* loaded and accepted: m (and config) are set */
    AL_GRAPH_SKIPPED, /* not selected: platform not wanted, attestation not asked for, or
                         not a manifest type; m and config are set only when the config had
                         to be read to learn the platform */
    AL_GRAPH_FAILED,  /* not in the source, unreadable, or against a rule: error says */
} al_graph_state;

typedef struct al_graph_node {
    al_graph_state state;
    const char *digest;
    const al_descriptor *desc;     /* what named it: the parent's entry, or the root's */
    const char *parent;            /* digest of the index listing it; NULL for the root */
    size_t position;               /* its place in the parent's entries */
    int level;                     /* the root is 1 */
    al_graph_kind kind;            /* INDEX or IMAGE once loaded, else the descriptor's */
    int64_t size;                  /* the body's length when loaded, else the descriptor's */
    const al_manifest *m;          /* set whenever the manifest was loaded */
    const al_image_config *config; /* image manifests whose config was read */
    bool has_platform;             /* from the descriptor, else from the config */
    al_platform platform;
    const al_error *error;    /* FAILED: why */
    const char *error_digest; /* FAILED: the blob at fault (the node's, or its config's) */
} al_graph_node;

/* Return 0 to go on, AL_GRAPH_STOP to end the walk (it returns 0), or a
 * negative code with *err set to end it with that error. After a FAILED
 * node, 0 goes on without it (al_graph_node_error turns it into the walk's
 * error instead). Everything the node points at is valid during the call. */
#define AL_GRAPH_STOP 1
typedef int (*al_graph_visit_fn)(void *ud, const al_graph_node *n, al_error **err);

typedef struct al_graph_walk_opts {
    al_graph_order order;
    const al_graph_select *select; /* NULL: every entry, attestations too */
    bool configs;                  /* read and check every selected image manifest's config (the
                                      config is always read when the platform depends on it) */
} al_graph_walk_opts;

/* Walk the graph under root (its digest, and the media type and size a tag
 * row recorded, or NULL and -1), calling visit for the root and every
 * entry of every index reached, once per digest. Returns 0, or the
 * visitor's negative code. Memory: the manifests of one path from the root
 * (at most AL_GRAPH_MAX_INDEX_LEVELS + 1 of them) and the digests seen. */
int al_graph_walk(const al_graph_source *src, const al_descriptor *root,
                  const al_graph_walk_opts *opts, al_graph_visit_fn visit, void *ud,
                  al_error **err);

/* A visitor's way to make a FAILED node the walk's error. */
int al_graph_node_error(const al_graph_node *n, al_error **err);

/* A source over the store's blobs (al_store_read_blob, which hashes what
 * it reads). *out borrows store. */
void al_graph_store_source(al_graph_source *out, al_store *store);

#endif
