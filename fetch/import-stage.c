/* The import's staging: every blob of a bundle, hashed as it is read, lands
 * verified and fsynced in STORE/tmp/import-<bundle id>/<hex>; from there
 * the commit renames it into blobs/sha256 (import.h, docs/DESIGN.md
 * "Bundles").
 *
 * Crash rules. A file in the staging directory named <hex> was verified
 * and fsynced before it got that name, so a rerun trusts it as a fetch
 * trusts a file in blobs/sha256 (by its name and size) and does not read
 * that member again; anything else there (a killed writer's temp file, a
 * planted link) is removed. The directory is opened relative to STORE/tmp
 * and never through a symlink; every name in it likewise (O_NOFOLLOW,
 * fstat: a regular file with one link). */
#include "import-private.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAGE_MODE 0755
#define FILE_MODE 0644
#define IN_STAGE (O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

/* --- the directory ------------------------------------------------------------ */

static const char *tmp_dir_shown(const al_import *imp, char *buf, size_t len)
{
    snprintf(buf, len, "%s/tmp/%s", al_store_dir(imp->store), imp->stage_name);
    return buf;
}

/* A staged file: a regular file with one link and the size expected. */
static bool staged_ok(int dirfd, const char *name, uint64_t size)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_nlink == 1 && (uint64_t)st.st_size == size;
}

static bool hex_name(const char *name)
{
    if (strlen(name) != AL_DIGEST_HEX_LEN)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* Remove what is not a staged blob: temp files of a killed run, and
 * anything at a <hex> name that is not a plain file. */
static void sweep(al_import *imp)
{
    char **names = NULL;
    size_t n = 0;
    if (al_dir_names(imp->stage_fd, ".", &names, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (hex_name(names[i]) && fstatat(imp->stage_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_nlink == 1)
            continue;
        if (unlinkat(imp->stage_fd, names[i], 0) < 0 && errno == EISDIR)
            al_warn("%s/tmp/%s/%s is a directory: left alone", al_store_dir(imp->store),
                    imp->stage_name, names[i]);
    }
    al_strv_free(names, n);
}

int imp_stage_open(al_import *imp, al_error **err)
{
    int tmp_fd = al_store_tmp_fd(imp->store);
    char shown[4096];
    imp->stage_name = al_xasprintf("import-%s", imp->m.id);
    tmp_dir_shown(imp, shown, sizeof(shown));
    if (mkdirat(tmp_fd, imp->stage_name, STAGE_MODE) == 0) {
        if (fsync(tmp_fd) < 0)
            return al_error_set(err, AL_E_IO, errno, "fsync %s/tmp", al_store_dir(imp->store));
    } else if (errno != EEXIST) {
        return al_error_set(err, AL_E_IO, errno, "create directory %s", shown);
    }
    imp->stage_fd =
        openat(tmp_fd, imp->stage_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (imp->stage_fd < 0)
        return al_error_set(err, AL_E_IO, errno,
                            "open %s (a symbolic link or a file stands there?)", shown);
    sweep(imp);
    size_t kept = 0;
    uint64_t kept_bytes = 0;
    for (size_t i = 0; i < imp->m.n_blobs; i++) {
        const al_bundle_blob *b = &imp->m.blobs[i];
        int64_t have = -1;
        if (al_store_has_blob(imp->store, b->digest, &have) && (uint64_t)have == b->size) {
            imp->blobs[i].present = true;
            continue;
        }
        if (staged_ok(imp->stage_fd, al_digest_hex(b->digest), b->size)) {
            imp->blobs[i].staged = true;
            kept++;
            kept_bytes += b->size;
        }
    }
    if (kept > 0) {
        char sb[32];
        al_info("%s: %zu blob%s (%s) staged by an earlier run: not read again", shown, kept,
                kept == 1 ? "" : "s", al_format_bytes(sb, sizeof(sb), kept_bytes));
    }
    return 0;
}

/* --- reading members -------------------------------------------------------- */

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const imp_member *)a)->digest, ((const imp_member *)b)->digest);
}

static imp_member *find_member(al_import *imp, const char *digest)
{
    imp_member key;
    memcpy(key.digest, digest, AL_DIGEST_BUF);
    return bsearch(&key, imp->members, imp->n_members, sizeof(key), cmp_member);
}

/* A member is not needed when its blob is in the store or staged already,
 * or when it is a part staged already. */
static bool not_needed(al_import *imp, const imp_member *mb)
{
    const imp_blob *b = &imp->blobs[mb->blob];
    if (b->present || b->staged)
        return true;
    return imp->m.blobs[mb->blob].n_parts > 0 &&
           staged_ok(imp->stage_fd, al_digest_hex(mb->digest), mb->size);
}

/* A unique temp name in the staging directory, created O_EXCL. */
static int open_temp(al_import *imp, const char *hex, char **name_out, al_error **err)
{
    char stem[13];
    snprintf(stem, sizeof(stem), "%.12s", hex);
    int fd = al_create_unique_at(imp->stage_fd, stem, ".tmp", O_WRONLY | O_NONBLOCK, name_out);
    if (fd < 0)
        return al_error_set(err, AL_E_IO, -fd, "create a file in %s/tmp/%s",
                            al_store_dir(imp->store), imp->stage_name);
    return fd;
}

/* fsync, close and rename the temp file to <hex>; on any failure (r, what
 * went before, included) it goes. */
static int settle(al_import *imp, int fd, char *tmp, const char *hex, int r, al_error **err)
{
    if (r < 0) {
        close(fd);
        unlinkat(imp->stage_fd, tmp, 0);
        return r;
    }
    if (fsync(fd) < 0)
        r = al_error_set(err, AL_E_IO, errno, "fsync %s/tmp/%s/%s", al_store_dir(imp->store),
                         imp->stage_name, tmp);
    if (close(fd) < 0 && r == 0)
        r = al_error_set(err, AL_E_IO, errno, "close %s", tmp);
    if (r == 0 && renameat(imp->stage_fd, tmp, imp->stage_fd, hex) < 0)
        r = al_error_set(err, AL_E_IO, errno, "rename %s to %s in %s/tmp/%s", tmp, hex,
                         al_store_dir(imp->store), imp->stage_name);
    if (r < 0)
        unlinkat(imp->stage_fd, tmp, 0);
    return r;
}

/* Stream the current member into the staging directory, hashing it. */
static int stage_member(al_import *imp, al_bundle_reader *r, imp_member *mb, al_error **err)
{
    const char *hex = al_digest_hex(mb->digest);
    _cleanup_free_ char *tmp = NULL;
    int fd = open_temp(imp, hex, &tmp, err);
    if (fd < 0)
        return fd;
    al_hasher *h = al_hasher_new();
    int res;
    const void *buf;
    size_t len;
    while ((res = al_bundle_data(r, &buf, &len, err)) > 0) {
        al_hasher_update(h, buf, len);
        int w = al_write_all(fd, buf, len);
        if (w < 0) {
            res = al_error_set(err, AL_E_IO, -w, "write %s/tmp/%s/%s", al_store_dir(imp->store),
                               imp->stage_name, tmp);
            break;
        }
    }
    char got[AL_DIGEST_BUF];
    al_hasher_final(h, got);
    al_hasher_free(h);
    if (res == 0 && strcmp(got, mb->digest) != 0)
        res = al_error_set(err, AL_E_DIGEST, 0,
                           "%s: member blobs/sha256/%s hashes to %s: the bundle is damaged (a "
                           "flipped or lost byte in transit?)",
                           al_bundle_reader_path(r), hex, got);
    if ((res = settle(imp, fd, tmp, hex, res, err)) < 0)
        return res;
    imp->bytes_read += mb->size;
    return 0;
}

/* A volume's header must be the one its place says. */
static int check_volume(al_import *imp, al_bundle_reader *r, unsigned k, al_error **err)
{
    const al_bundle_volume *v = al_bundle_reader_volume(r);
    const char *path = al_bundle_reader_path(r);
    if (imp->n_vols == 1 && imp->m.volumes == 1 && v == NULL)
        return 0;
    if (v == NULL)
        return al_error_set(err, AL_E_PARSE, 0,
                            "%s has no volume header, but bundle %s has %u volumes", path,
                            imp->m.id, imp->m.volumes);
    if (strcmp(v->bundle_id, imp->m.id) != 0)
        return al_error_set(err, AL_E_PARSE, 0,
                            "%s is a volume of bundle %s, not of %s: volumes of two bundles "
                            "were mixed",
                            path, v->bundle_id, imp->m.id);
    if (v->volume != k || v->volumes != imp->m.volumes)
        return al_error_set(err, AL_E_PARSE, 0,
                            "%s says it is volume %u of %u; expected volume %u of %u", path,
                            v->volume, v->volumes, k, imp->m.volumes);
    if (strcmp(v->manifest_digest, imp->manifest_digest) != 0)
        return al_error_set(err, AL_E_PARSE, 0,
                            "%s belongs to a bundle %s whose manifest differs (%s, not %s)", path,
                            imp->m.id, v->manifest_digest, imp->manifest_digest);
    return 0;
}

static int read_members(al_import *imp, al_bundle_reader *r, al_error **err)
{
    char digest[AL_DIGEST_BUF];
    uint64_t size = 0;
    int res;
    while ((res = al_bundle_next(r, digest, &size, err)) > 0) {
        imp_member *mb = find_member(imp, digest);
        if (mb == NULL)
            return al_error_set(err, AL_E_PARSE, 0,
                                "%s: member blobs/sha256/%s is not in the bundle's manifest: "
                                "refused",
                                al_bundle_reader_path(r), al_digest_hex(digest));
        if (size != mb->size)
            return al_error_set(err, AL_E_SIZE, 0,
                                "%s: member blobs/sha256/%s is %llu bytes; the manifest says "
                                "%llu",
                                al_bundle_reader_path(r), al_digest_hex(digest),
                                (unsigned long long)size, (unsigned long long)mb->size);
        bool skip = mb->seen || not_needed(imp, mb);
        mb->seen = true;
        if (skip)
            continue;
        if ((res = stage_member(imp, r, mb, err)) < 0)
            return res;
        if (imp->m.blobs[mb->blob].n_parts == 0) {
            imp->blobs[mb->blob].staged = imp->blobs[mb->blob].fresh = true;
            imp->n_fresh++;
        }
    }
    return res;
}

static int read_volume(al_import *imp, unsigned k, al_error **err)
{
    al_bundle_reader *r = k == 1 ? imp->first : NULL;
    int res = 0;
    if (r == NULL && (res = al_bundle_open(&r, imp->vol_paths[k - 1], err)) < 0)
        return res;
    if (imp->n_vols > 1)
        al_info("reading %s (volume %u of %u)", imp->vol_paths[k - 1], k, imp->n_vols);
    res = check_volume(imp, r, k, err);
    if (res == 0)
        res = read_members(imp, r, err);
    if (k == 1)
        imp->first = NULL;
    al_bundle_close(r);
    return res;
}

/* --- split blobs -------------------------------------------------------------- */

/* Copy a staged part into fd, hashing it into whole. */
static int copy_part(al_import *imp, const al_bundle_part *p, int fd, al_hasher *whole,
                     unsigned char *buf, al_error **err)
{
    const char *hex = al_digest_hex(p->digest);
    _cleanup_close_ int in = openat(imp->stage_fd, hex, O_RDONLY | IN_STAGE);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != p->size)
        return al_error_set(err, AL_E_IO, in < 0 ? errno : 0, "staged part %s: unreadable",
                            p->digest);
    for (;;) {
        ssize_t n = read(in, buf, 1u << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return al_error_set(err, AL_E_IO, errno, "read staged part %s", p->digest);
        if (n == 0)
            return 0;
        al_hasher_update(whole, buf, (size_t)n);
        int w = al_write_all(fd, buf, (size_t)n);
        if (w < 0)
            return al_error_set(err, AL_E_IO, -w, "write %s/tmp/%s", al_store_dir(imp->store),
                                imp->stage_name);
    }
}

/* Join the parts of blob i, in order, into <hex>, checking the whole
 * blob's digest: each part verified alone proves little about the whole. */
static int join(al_import *imp, size_t i, al_error **err)
{
    const al_bundle_blob *b = &imp->m.blobs[i];
    const char *hex = al_digest_hex(b->digest);
    _cleanup_free_ char *tmp = NULL;
    int fd = open_temp(imp, hex, &tmp, err);
    if (fd < 0)
        return fd;
    al_hasher *whole = al_hasher_new();
    _cleanup_free_ unsigned char *buf = al_xmalloc(1u << 20);
    int res = 0;
    for (size_t k = 0; k < b->n_parts && res == 0; k++)
        res = copy_part(imp, &b->parts[k], fd, whole, buf, err);
    char got[AL_DIGEST_BUF];
    al_hasher_final(whole, got);
    al_hasher_free(whole);
    if (res == 0 && strcmp(got, b->digest) != 0)
        res = al_error_set(err, AL_E_DIGEST, 0,
                           "%s: the %zu parts of blob %s join to %s: the bundle is damaged",
                           imp->path, b->n_parts, b->digest, got);
    if ((res = settle(imp, fd, tmp, hex, res, err)) < 0)
        return res;
    for (size_t k = 0; k < b->n_parts; k++)
        if (imp_blob_index(imp, b->parts[k].digest) < 0)
            unlinkat(imp->stage_fd, al_digest_hex(b->parts[k].digest), 0);
    imp->blobs[i].staged = imp->blobs[i].fresh = true;
    imp->n_fresh++;
    return 0;
}

/* --- the whole read ------------------------------------------------------- */

static int complete(al_import *imp, al_error **err)
{
    size_t missing = 0, first = 0;
    for (size_t i = 0; i < imp->n_members; i++) {
        if (imp->members[i].seen || not_needed(imp, &imp->members[i]))
            continue;
        if (missing++ == 0)
            first = i;
    }
    if (missing == 0)
        return 0;
    const imp_member *mb = &imp->members[first];
    char more[64] = "";
    if (missing > 1)
        snprintf(more, sizeof(more), " (and %zu more)", missing - 1);
    return al_error_set(err, AL_E_NOT_FOUND, 0,
                        "%s lacks blob %s (%llu bytes) that its manifest names%s: the bundle is "
                        "incomplete or truncated; nothing was imported",
                        imp->path, mb->digest, (unsigned long long)mb->size, more);
}

int imp_stage_read(al_import *imp, al_error **err)
{
    int res = 0;
    for (unsigned k = 1; k <= imp->n_vols && res == 0; k++)
        res = read_volume(imp, k, err);
    if (res == 0)
        res = complete(imp, err);
    for (size_t i = 0; res == 0 && i < imp->m.n_blobs; i++)
        if (imp->m.blobs[i].n_parts > 0 && !imp->blobs[i].present && !imp->blobs[i].staged)
            res = join(imp, i, err);
    if (res == 0 && fsync(imp->stage_fd) < 0)
        res = al_error_set(err, AL_E_IO, errno, "fsync %s/tmp/%s", al_store_dir(imp->store),
                           imp->stage_name);
    return res;
}

/* --- publishing and removing ------------------------------------------------- */

int imp_stage_publish(al_import *imp, al_error **err)
{
    int blobs_fd = al_store_blobs_fd(imp->store);
    for (size_t i = 0; i < imp->m.n_blobs; i++) {
        if (!imp->blobs[i].staged || imp->blobs[i].present)
            continue;
        const char *hex = al_digest_hex(imp->m.blobs[i].digest);
        /* Both directories are the store's own (opened without following a
         * link); the rename replaces whatever stands at the name, never
         * its target, as the blob writer's does. */
        if (renameat(imp->stage_fd, hex, blobs_fd, hex) < 0)
            return al_error_set(err, AL_E_IO, errno, "rename %s/tmp/%s/%s into blobs/sha256",
                                al_store_dir(imp->store), imp->stage_name, hex);
        imp->blobs[i].present = true;
    }
    if (fsync(blobs_fd) < 0)
        return al_error_set(err, AL_E_IO, errno, "fsync %s/blobs/sha256", al_store_dir(imp->store));
    return 0;
}

void imp_stage_remove(al_store *store, const char *stage_name)
{
    int tmp_fd = al_store_tmp_fd(store);
    int fd = openat(tmp_fd, stage_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    char **names = NULL;
    size_t n = 0;
    if (al_dir_names(fd, ".", &names, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            unlinkat(fd, names[i], 0);
        al_strv_free(names, n);
    }
    close(fd);
    if (unlinkat(tmp_fd, stage_name, AT_REMOVEDIR) == 0)
        (void)fsync(tmp_fd);
}
