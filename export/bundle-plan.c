/* What a bundle carries, and how it is cut into volumes (bundle-plan.h). */
#include "bundle-plan.h"
#include "blobcopy.h"
#include "closure.h"
#include "tar.h"
#include "../common/cli.h"
#include "../common/util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything planning holds besides the plan. */
typedef struct planner {
    al_bundle_plan *p;
    al_store *store;
    const al_bundle_opts *o;
    al_db_snapshot snap;
    long *tags; /* indexes into snap.tags, in the order given */
    size_t n_tags;
    al_closure *cl; /* per selected tag */
    bool *held;     /* per snapshot blob: the far side holds it */
    bool *listed;   /* per snapshot blob: carried or omitted already */
} planner;

static void problem(planner *pl, al_errc code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(planner *pl, al_errc code, const char *fmt, ...)
{
    al_bundle_plan *p = pl->p;
    va_list ap;
    va_start(ap, fmt);
    char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    if (p->n_problems == 0)
        p->problem_code = code;
    p->problems = al_xrealloc(p->problems, (p->n_problems + 1) * sizeof(*p->problems));
    p->problems[p->n_problems++] = msg;
}

int al_bundle_parse_size(uint64_t *out, const char *s, al_error **err)
{
    if (!al_cli_parse_size(s, out))
        return al_error_set(err, AL_E_USAGE, 0,
                            "--volume-size: expected a size such as 4G, 700M or 1048576, got "
                            "\"%s\"",
                            s);
    if (*out < AL_BUNDLE_MIN_VOLUME)
        return al_error_set(err, AL_E_USAGE, 0, "--volume-size %s: a volume must be at least 1M",
                            s);
    return 0;
}

/* --- which tags ------------------------------------------------------------ */

static long tag_index(const al_db_snapshot *s, const char *full_name)
{
    size_t lo = 0, hi = s->n_tags;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->tags[mid].full_name, full_name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void add_tag(planner *pl, long t)
{
    for (size_t i = 0; i < pl->n_tags; i++)
        if (pl->tags[i] == t)
            return;
    pl->tags = al_xrealloc(pl->tags, (pl->n_tags + 1) * sizeof(*pl->tags));
    pl->tags[pl->n_tags++] = t;
}

/* A ref names a tags row by its full form. NAME:TAG@DIGEST (a lock file's
 * line) names the row NAME:TAG, which must still be at DIGEST: a bundle
 * carries a tag at its current digest. */
static void select_ref(planner *pl, const al_ref *ref)
{
    _cleanup_free_ char *full = al_ref_full(ref);
    long t = tag_index(&pl->snap, full);
    if (t < 0 && ref->tag != NULL && ref->digest != NULL) {
        al_ref bare = *ref;
        bare.digest = NULL;
        _cleanup_free_ char *tagged = al_ref_full(&bare);
        t = tag_index(&pl->snap, tagged);
        if (t >= 0 && strcmp(pl->snap.tags[t].digest, ref->digest) != 0) {
            problem(pl, AL_E_NOT_FOUND,
                    "%s: the store has %s at %s, not at %s: a bundle carries a tag at its "
                    "current digest",
                    full, tagged, pl->snap.tags[t].digest, ref->digest);
            return;
        }
    }
    if (t < 0) {
        problem(pl, AL_E_NOT_FOUND, "not in store: %s", full);
        return;
    }
    add_tag(pl, t);
}

/* --- what the tags reach, and what the far side holds ------------------- */

static void reach(planner *pl)
{
    pl->cl = al_xcalloc(pl->n_tags + 1, sizeof(*pl->cl));
    for (size_t i = 0; i < pl->n_tags; i++) {
        const al_tag *t = &pl->snap.tags[pl->tags[i]];
        al_closure_compute(&pl->cl[i], &pl->snap, t->digest);
        if (pl->cl[i].n_missing > 0)
            problem(pl, AL_E_NOT_FOUND,
                    "incomplete: %s: %zu blob%s of its graph %s not in the store (first: %s; "
                    "airlock-export --verify-store says more)",
                    t->full_name, pl->cl[i].n_missing, pl->cl[i].n_missing == 1 ? "" : "s",
                    pl->cl[i].n_missing == 1 ? "is" : "are", pl->cl[i].missing[0]);
    }
}

/* The graphs, in this store, of every digest --since names. A digest this
 * store does not know stands for nothing here: its blobs are carried. */
static void far_side(planner *pl)
{
    pl->held = al_xcalloc(pl->snap.n_blobs + 1, sizeof(*pl->held));
    const al_since *s = pl->o->since;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (al_db_snapshot_blob_index(&pl->snap, s->entries[i].digest) < 0)
            continue;
        al_closure c;
        al_closure_compute(&c, &pl->snap, s->entries[i].digest);
        for (size_t k = 0; k < c.n; k++)
            pl->held[c.blobs[k]] = true;
        al_closure_dispose(&c);
    }
}

/* Carried and omitted, in walk order, each blob once. */
static void split_reached(planner *pl)
{
    al_bundle_manifest *m = &pl->p->m;
    size_t cap = 0;
    pl->listed = al_xcalloc(pl->snap.n_blobs + 1, sizeof(*pl->listed));
    for (size_t i = 0; i < pl->n_tags; i++) {
        for (size_t k = 0; k < pl->cl[i].n; k++) {
            long b = pl->cl[i].blobs[k];
            if (pl->listed[b])
                continue;
            pl->listed[b] = true;
            const al_db_blob *row = &pl->snap.blobs[b];
            if (pl->held[b]) {
                m->omitted = al_xrealloc(m->omitted, (m->n_omitted + 1) * sizeof(*m->omitted));
                al_bundle_part *o = &m->omitted[m->n_omitted++];
                memcpy(o->digest, row->digest, AL_DIGEST_BUF);
                o->size = (uint64_t)row->size;
                pl->p->omitted_bytes += o->size;
                continue;
            }
            if (m->n_blobs == cap) {
                cap = cap ? 2 * cap : 64;
                m->blobs = al_xrealloc(m->blobs, cap * sizeof(*m->blobs));
            }
            al_bundle_blob *cb = &m->blobs[m->n_blobs++];
            memset(cb, 0, sizeof(*cb));
            memcpy(cb->digest, row->digest, AL_DIGEST_BUF);
            cb->size = (uint64_t)row->size;
            pl->p->carried_bytes += cb->size;
        }
    }
}

/* --- the manifest's tags -------------------------------------------------- */

/* The first history row of name (rows are sorted by name, most recent
 * first), or -1. */
static long history_first(const planner *pl, const char *name)
{
    size_t lo = 0, hi = pl->snap.n_history;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(pl->snap.history[mid].full_name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < pl->snap.n_history && strcmp(pl->snap.history[lo].full_name, name) == 0 ? (long)lo
                                                                                        : -1;
}

static void fill_tag(planner *pl, size_t i, al_bundle_tag *bt)
{
    const al_tag *t = &pl->snap.tags[pl->tags[i]];
    bt->name = al_xstrdup(t->full_name);
    memcpy(bt->digest, t->digest, AL_DIGEST_BUF);
    bt->media_type = al_xstrdup(t->media_type);
    bt->size = t->size;
    bt->n_platforms = al_closure_platforms(&pl->snap, &pl->cl[i], &bt->platforms);
    long h = history_first(pl, t->full_name);
    bt->history = al_xcalloc(AL_BUNDLE_HISTORY + 1, sizeof(*bt->history));
    for (; h >= 0 && (size_t)h < pl->snap.n_history && bt->n_history < AL_BUNDLE_HISTORY; h++) {
        const al_db_history *e = &pl->snap.history[h];
        if (strcmp(e->full_name, t->full_name) != 0 || !al_digest_valid(e->new_digest))
            break;
        al_bundle_history *bh = &bt->history[bt->n_history++];
        memcpy(bh->digest, e->new_digest, AL_DIGEST_BUF);
        if (al_digest_valid(e->old_digest))
            memcpy(bh->old_digest, e->old_digest, AL_DIGEST_BUF);
        bh->at = e->at;
    }
}

static void add_held(al_bundle_manifest *m, const char *name, const char *digest)
{
    m->holds = al_xrealloc(m->holds, (m->n_holds + 1) * sizeof(*m->holds));
    al_bundle_held *h = &m->holds[m->n_holds++];
    h->name = name != NULL ? al_xstrdup(name) : NULL;
    memcpy(h->digest, digest, AL_DIGEST_BUF);
}

/* What the far side holds once the bundle is applied: the tags it carries
 * at their new digests, and what --since said it held under every other
 * name. Old digests of the carried tags are left out: the far side may
 * prune them, and a bundle that counted on them would then not apply. */
static void fill_holds(planner *pl)
{
    al_bundle_manifest *m = &pl->p->m;
    char **keys = al_xcalloc(m->n_tags + 1, sizeof(*keys));
    for (size_t i = 0; i < m->n_tags; i++) {
        keys[i] = al_since_key(m->tags[i].name);
        add_held(m, keys[i], m->tags[i].digest);
    }
    const al_since *s = pl->o->since;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        const al_since_entry *e = &s->entries[i];
        bool replaced = false;
        for (size_t k = 0; e->name != NULL && k < m->n_tags && !replaced; k++)
            replaced = keys[k] != NULL && strcmp(keys[k], e->name) == 0;
        if (!replaced)
            add_held(m, e->name, e->digest);
    }
    al_strv_free(keys, m->n_tags);
}

static int fill_head(planner *pl, al_db *db, al_error **err)
{
    al_bundle_manifest *m = &pl->p->m;
    bool found = false;
    int r = al_db_store_id(db, m->source_store, &found, err);
    if (r < 0)
        return r;
    if (!found)
        return al_error_set(err, AL_E_DB, 0,
                            "the store %s has no id yet (an older airlock made it): run "
                            "airlock-fetch on it once to upgrade it (airlock-fetch --store %s "
                            "--prune --dry-run changes nothing else)",
                            al_store_dir(pl->store), al_store_dir(pl->store));
    m->format = AL_BUNDLE_FORMAT;
    m->version = al_xstrdup(pl->o->version);
    al_bundle_id_new(m->id);
    m->created_at = al_now();
    const al_since *s = pl->o->since;
    if (s != NULL) {
        m->since_kind = al_xstrdup(s->kind);
        /* A bundle of another store says what the far side holds, but the
         * far side's chain is per source: this one builds on none. */
        if (strcmp(s->kind, "bundle") == 0 && strcmp(s->source_store, m->source_store) == 0)
            memcpy(m->base, s->bundle_id, sizeof(m->base));
    }
    return 0;
}

/* --- parts and volumes ------------------------------------------------------ */

/* What a volume can hold of tar stream: less than the size asked for (so
 * that "4G" suits FAT32, whose largest file is 4 GiB - 1), and for a
 * compressed volume, less again by zstd's and deflate's worst-case growth
 * of data that does not compress (about 1/256, as ZSTD_compressBound). */
static uint64_t volume_room(const al_bundle_opts *o)
{
    uint64_t v = o->volume_size - AL_TAR_BLOCK;
    if (o->kind != AL_SINK_PLAIN)
        v -= (o->volume_size >> 8) + (64u << 10);
    return v;
}

/* The length of a volume header without members, its numbers at their
 * widest, and what one member adds to it. */
static size_t header_base(const al_bundle_plan *p)
{
    al_bundle_volume v = {.format = AL_BUNDLE_FORMAT,
                          .volume = AL_BUNDLE_MAX_VOLUMES,
                          .volumes = AL_BUNDLE_MAX_VOLUMES};
    memcpy(v.bundle_id, p->m.id, sizeof(v.bundle_id));
    memcpy(v.manifest_digest, p->manifest_digest, sizeof(v.manifest_digest));
    size_t len = 0;
    free(al_bundle_volume_json(&v, &len));
    return len;
}

static size_t header_share(const al_bundle_member *mb)
{
    char e[AL_DIGEST_BUF + 64];
    return (size_t)snprintf(e, sizeof(e), "{\"digest\":\"%s\",\"size\":%llu}", mb->digest,
                            (unsigned long long)mb->len) +
           1; /* the comma */
}

/* The size of a part: a volume holding only its header and that part must
 * fit. */
static uint64_t part_size(const al_bundle_opts *o)
{
    uint64_t fixed = AL_TAR_TRAILER_SIZE + al_tar_entry_size(AL_BUNDLE_VOLUME_NAME, 4096) +
                     AL_TAR_BLOCK; /* the header (one member: well under 4 KiB), the part's */
    return (volume_room(o) - fixed) / AL_TAR_BLOCK * AL_TAR_BLOCK;
}

/* Hash the parts of a blob larger than a part may be: one read of the
 * blob, which also checks the blob's own digest (a damaged blob must not
 * be cut into parts that verify). */
static int hash_parts(planner *pl, al_bundle_blob *b, uint64_t psize, const char *owner,
                      al_error **err)
{
    int fd = -1;
    int r = al_blobcopy_open(pl->store, b->digest, b->size, owner, &fd, err);
    if (r < 0)
        return r;
    b->n_parts = (size_t)((b->size + psize - 1) / psize);
    b->parts = al_xcalloc(b->n_parts, sizeof(*b->parts));
    al_hasher *whole = al_hasher_new(), *part = al_hasher_new();
    _cleanup_free_ unsigned char *buf = al_xmalloc(AL_BLOBCOPY_CHUNK);
    uint64_t off = 0;
    for (size_t k = 0; k < b->n_parts && r == 0; k++) {
        uint64_t end = off + psize < b->size ? off + psize : b->size;
        while (off < end && r == 0) {
            size_t want = end - off < AL_BLOBCOPY_CHUNK ? (size_t)(end - off) : AL_BLOBCOPY_CHUNK;
            ssize_t n = pread(fd, buf, want, (off_t)off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                r = al_error_set(err, n < 0 ? AL_E_IO : AL_E_SIZE, n < 0 ? errno : 0,
                                 "blob %s of %s: read", b->digest, owner);
                break;
            }
            al_hasher_update(whole, buf, (size_t)n);
            al_hasher_update(part, buf, (size_t)n);
            off += (uint64_t)n;
        }
        b->parts[k].size = k + 1 < b->n_parts ? psize : b->size - psize * k;
        al_hasher_final(part, b->parts[k].digest);
        al_hasher_reset(part);
    }
    if (r == 0)
        r = al_blobcopy_check(whole, b->digest, "blob", owner, err);
    al_hasher_free(whole);
    al_hasher_free(part);
    close(fd);
    return r;
}

/* The owner of carried blob i: the first tag whose graph reaches it. */
static const char *owner_of(const planner *pl, const char *digest)
{
    long b = al_db_snapshot_blob_index(&pl->snap, digest);
    for (size_t i = 0; b >= 0 && i < pl->n_tags; i++)
        if (al_closure_has(&pl->cl[i], b))
            return pl->p->m.tags[i].name;
    return "the bundle";
}

static int make_members(planner *pl, al_error **err)
{
    al_bundle_plan *p = pl->p;
    uint64_t psize = pl->o->volume_size > 0 ? part_size(pl->o) : UINT64_MAX;
    for (size_t i = 0; i < p->m.n_blobs; i++) {
        al_bundle_blob *b = &p->m.blobs[i];
        const char *owner = owner_of(pl, b->digest);
        if (b->size > psize) {
            int r = hash_parts(pl, b, psize, owner, err);
            if (r < 0)
                return r;
        }
        size_t n = b->n_parts > 0 ? b->n_parts : 1;
        p->members = al_xrealloc(p->members, (p->n_members + n) * sizeof(*p->members));
        uint64_t off = 0;
        for (size_t k = 0; k < n; k++) {
            al_bundle_member *mb = &p->members[p->n_members++];
            memcpy(mb->digest, b->n_parts > 0 ? b->parts[k].digest : b->digest, AL_DIGEST_BUF);
            memcpy(mb->blob, b->digest, AL_DIGEST_BUF);
            mb->blob_size = b->size;
            mb->offset = off;
            mb->len = b->n_parts > 0 ? b->parts[k].size : b->size;
            mb->owner = owner;
            off += mb->len;
        }
    }
    return 0;
}

static uint64_t member_entry(const al_bundle_member *mb)
{
    _cleanup_free_ char *name = al_bundle_member_name(mb->digest);
    return al_tar_entry_size(name, mb->len);
}

/* The tar size of volume v (1-based) with its members, the header at the
 * length given. */
static uint64_t vol_size(const al_bundle_plan *p, unsigned v, const al_bundle_vol *vol, bool split,
                         size_t hdr_len)
{
    uint64_t n = AL_TAR_TRAILER_SIZE;
    if (split)
        n += al_tar_entry_size(AL_BUNDLE_VOLUME_NAME, hdr_len);
    if (v == 1)
        n += al_tar_entry_size(AL_BUNDLE_MANIFEST_NAME, p->manifest_len);
    for (size_t i = vol->first; i < vol->first + vol->n; i++)
        n += member_entry(&p->members[i]);
    return n;
}

/* Fill volumes in member order. The manifest is at its longest here (its
 * volume count at the widest); the final one can only be shorter. Volume 1
 * may hold the manifest alone when its first member does not fit beside
 * it; every other volume takes at least one member, which part_size()
 * guarantees fits. */
static int layout(planner *pl, al_error **err)
{
    al_bundle_plan *p = pl->p;
    const al_bundle_opts *o = pl->o;
    p->vols = al_xcalloc(1, sizeof(*p->vols));
    p->m.volumes = 1;
    if (o->volume_size == 0) {
        p->vols[0] = (al_bundle_vol){0, p->n_members, 0};
        return 0;
    }
    uint64_t room = volume_room(o);
    size_t h0 = header_base(p);
    uint64_t used =
        AL_TAR_TRAILER_SIZE + al_tar_entry_size(AL_BUNDLE_MANIFEST_NAME, p->manifest_len);
    if (used + al_tar_entry_size(AL_BUNDLE_VOLUME_NAME, h0) > room)
        return al_error_set(err, AL_E_USAGE, 0,
                            "--volume-size: the bundle manifest alone (%zu bytes) does not fit "
                            "in a volume of %llu bytes",
                            p->manifest_len, (unsigned long long)o->volume_size);
    size_t nv = 1, hlen = h0;
    for (size_t i = 0; i < p->n_members; i++) {
        al_bundle_vol *cur = &p->vols[nv - 1];
        uint64_t add = member_entry(&p->members[i]);
        size_t share = header_share(&p->members[i]);
        if (used + add + al_tar_entry_size(AL_BUNDLE_VOLUME_NAME, hlen + share) > room) {
            assert(cur->n > 0 || nv == 1);
            if (nv == AL_BUNDLE_MAX_VOLUMES)
                return al_error_set(err, AL_E_USAGE, 0,
                                    "--volume-size: the bundle needs more than %u volumes of "
                                    "%llu bytes",
                                    AL_BUNDLE_MAX_VOLUMES, (unsigned long long)o->volume_size);
            p->vols = al_xrealloc(p->vols, (nv + 1) * sizeof(*p->vols));
            cur = &p->vols[nv++];
            *cur = (al_bundle_vol){i, 0, 0};
            used = AL_TAR_TRAILER_SIZE;
            hlen = h0;
        }
        cur->n++;
        used += add;
        hlen += share;
    }
    p->m.volumes = (unsigned)nv;
    return 0;
}

/* The manifest's text and digest; with max_volumes, at its longest. */
static void render(al_bundle_plan *p, bool max_volumes)
{
    unsigned v = p->m.volumes;
    if (max_volumes)
        p->m.volumes = AL_BUNDLE_MAX_VOLUMES;
    al_bundle_checksum(&p->m, p->m.checksum);
    free(p->manifest_json);
    p->manifest_json = al_bundle_manifest_json(&p->m, &p->manifest_len);
    al_digest_bytes(p->manifest_digest, p->manifest_json, p->manifest_len);
    p->m.volumes = v;
}

static int cut(planner *pl, al_error **err)
{
    al_bundle_plan *p = pl->p;
    int r = make_members(pl, err);
    if (r < 0)
        return r;
    render(p, true);
    if ((r = layout(pl, err)) < 0)
        return r;
    render(p, false);
    bool split = p->split = pl->o->volume_size > 0;
    p->volume_size = pl->o->volume_size;
    for (unsigned v = 0; v < p->m.volumes; v++) {
        al_bundle_vol *vol = &p->vols[v];
        vol->tar_size = vol_size(p, v + 1, vol, split, 0);
        if (split) {
            al_bundle_volume h = {.format = AL_BUNDLE_FORMAT,
                                  .volume = v + 1,
                                  .volumes = p->m.volumes,
                                  .n_members = vol->n};
            memcpy(h.bundle_id, p->m.id, sizeof(h.bundle_id));
            memcpy(h.manifest_digest, p->manifest_digest, sizeof(h.manifest_digest));
            h.members = al_xcalloc(vol->n + 1, sizeof(*h.members));
            for (size_t i = 0; i < vol->n; i++) {
                memcpy(h.members[i].digest, p->members[vol->first + i].digest, AL_DIGEST_BUF);
                h.members[i].size = p->members[vol->first + i].len;
            }
            size_t len = 0;
            free(al_bundle_volume_json(&h, &len));
            free(h.members);
            vol->tar_size = vol_size(p, v + 1, vol, true, len);
        }
        p->tar_bytes += vol->tar_size;
    }
    return 0;
}

/* --- the whole plan -------------------------------------------------------- */

static void planner_dispose(planner *pl)
{
    for (size_t i = 0; pl->cl != NULL && i < pl->n_tags; i++)
        al_closure_dispose(&pl->cl[i]);
    free(pl->cl);
    free(pl->tags);
    free(pl->held);
    free(pl->listed);
    al_db_snapshot_dispose(&pl->snap);
}

static int select_tags(planner *pl, al_ref *const *refs, size_t n_refs, bool all)
{
    for (size_t i = 0; i < n_refs; i++)
        select_ref(pl, refs[i]);
    for (size_t i = 0; all && i < pl->snap.n_tags; i++)
        add_tag(pl, (long)i);
    if (pl->n_tags == 0 && pl->p->n_problems == 0)
        problem(pl, AL_E_NOT_FOUND, "the store %s holds no tags", al_store_dir(pl->store));
    return 0;
}

int al_bundle_plan_make(al_bundle_plan *out, al_store *store, al_db *db, al_ref *const *refs,
                        size_t n_refs, bool all, const al_bundle_opts *opts, al_error **err)
{
    memset(out, 0, sizeof(*out));
    planner pl = {.p = out, .store = store, .o = opts};
    int r = al_db_snapshot_load(db, &pl.snap, err);
    if (r == 0)
        r = fill_head(&pl, db, err);
    if (r == 0)
        r = select_tags(&pl, refs, n_refs, all);
    if (r == 0)
        reach(&pl);
    if (r == 0 && out->n_problems == 0) {
        far_side(&pl);
        split_reached(&pl);
        out->m.n_tags = pl.n_tags;
        out->m.tags = al_xcalloc(pl.n_tags + 1, sizeof(*out->m.tags));
        for (size_t i = 0; i < pl.n_tags; i++)
            fill_tag(&pl, i, &out->m.tags[i]);
        fill_holds(&pl);
        r = cut(&pl, err);
    }
    planner_dispose(&pl);
    if (r < 0)
        al_bundle_plan_dispose(out);
    return r;
}

void al_bundle_plan_dispose(al_bundle_plan *p)
{
    al_bundle_manifest_dispose(&p->m);
    free(p->manifest_json);
    free(p->members);
    free(p->vols);
    al_strv_free(p->problems, p->n_problems);
    memset(p, 0, sizeof(*p));
}
