/* --split image: names, recipes and the directory's state file (split.h). */
#include "split.h"
#include "../common/file.h"
#include "../common/jsondoc.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

/* The readable part of a name is cut here, leaving room for "@hex.tar.zst"
 * within NAME_MAX (255). */
#define READABLE_MAX 200
#define HEX_SHOWN 12

char *al_split_name(const al_export_image *im, const char *suffix)
{
    _cleanup_free_ char *base =
        im->tag ? al_xasprintf("%s:%s", im->name, im->tag) : al_xstrdup(im->name);
    for (char *p = base; *p; p++)
        if (*p == '/' || *p == ':')
            *p = '_';
    if (strlen(base) > READABLE_MAX)
        base[READABLE_MAX] = '\0';
    return al_xasprintf("%s@%.*s%s", base, HEX_SHOWN, al_digest_hex(im->manifest_digest), suffix);
}

const char *al_split_suffix(al_sink_kind kind)
{
    switch (kind) {
    case AL_SINK_ZSTD: return ".tar.zst";
    case AL_SINK_GZIP: return ".tar.gz";
    case AL_SINK_PLAIN: break;
    }
    return ".tar";
}

bool al_split_is_ours(const char *name)
{
    const char *at = strrchr(name, '@');
    if (at == NULL || at == name)
        return false;
    for (const char *p = name; p < at; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    const char *h = at + 1;
    for (int i = 0; i < HEX_SHOWN; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    const char *sfx = h + HEX_SHOWN;
    return strcmp(sfx, ".tar") == 0 || strcmp(sfx, ".tar.zst") == 0 || strcmp(sfx, ".tar.gz") == 0;
}

void al_split_recipe(char out[AL_DIGEST_BUF], const al_export_image *im, al_export_format format,
                     bool decompress_zstd, al_sink_kind kind, int level)
{
    _cleanup_free_ char *text =
        al_xasprintf("airlock-split %d\n%s\n%s\n%s\n%s\n%s\n%d\n", AL_SPLIT_RECIPE, im->ref,
                     im->manifest_digest, al_export_format_name(format),
                     decompress_zstd && format != AL_FORMAT_OCI ? "decompress-zstd" : "-",
                     al_sink_kind_name(kind), kind == AL_SINK_PLAIN ? 0 : level);
    al_digest_bytes(out, text, strlen(text));
}

/* --- state ---------------------------------------------------------------------- */

void al_split_state_dispose(al_split_state *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].file);
        free(s->e[i].ref);
    }
    free(s->e);
    memset(s, 0, sizeof(*s));
}

static al_split_entry *entry(al_split_state *s, const char *file)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].file, file) == 0)
            return &s->e[i];
    return NULL;
}

const al_split_entry *al_split_state_get(const al_split_state *s, const char *file)
{
    return entry((al_split_state *)s, file);
}

static al_split_entry *add_entry(al_split_state *s, const char *file, const char *ref)
{
    if (s->n % 32 == 0)
        s->e = al_xrealloc(s->e, (s->n + 32) * sizeof(*s->e));
    al_split_entry *e = &s->e[s->n++];
    memset(e, 0, sizeof(*e));
    e->file = al_xstrdup(file);
    e->ref = al_xstrdup(ref);
    return e;
}

void al_split_state_load(al_split_state *out, int dirfd)
{
    memset(out, 0, sizeof(*out));
    int fd = openat(dirfd, AL_SPLIT_STATE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    json_error_t je;
    json_t *root = json_loadfd(fd, 0, &je);
    close(fd);
    json_t *files = json_object_get(root, "archives"), *f;
    size_t i;
    json_array_foreach(files, i, f)
    {
        const char *file = json_string_value(json_object_get(f, "file"));
        const char *ref = json_string_value(json_object_get(f, "ref"));
        const char *recipe = json_string_value(json_object_get(f, "recipe"));
        if (file == NULL || ref == NULL || recipe == NULL || !al_split_is_ours(file) ||
            !al_digest_valid(recipe) || entry(out, file) != NULL)
            continue;
        al_split_entry *e = add_entry(out, file, ref);
        snprintf(e->recipe, sizeof(e->recipe), "%s", recipe);
        e->size = (uint64_t)json_integer_value(json_object_get(f, "size"));
        e->ino = (uint64_t)json_integer_value(json_object_get(f, "inode"));
        e->mtime_s = json_integer_value(json_object_get(f, "mtime_s"));
        e->mtime_ns = json_integer_value(json_object_get(f, "mtime_ns"));
    }
    json_decref(root);
}

bool al_split_unchanged(const al_split_state *s, int dirfd, const char *file, const char *recipe)
{
    const al_split_entry *e = al_split_state_get(s, file);
    struct stat st;
    if (e == NULL || strcmp(e->recipe, recipe) != 0 ||
        fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return false;
    return (uint64_t)st.st_size == e->size && (uint64_t)st.st_ino == e->ino &&
           st.st_mtim.tv_sec == e->mtime_s && st.st_mtim.tv_nsec == e->mtime_ns;
}

void al_split_state_set(al_split_state *s, const char *file, const char *ref, const char *recipe,
                        const struct stat *st)
{
    al_split_entry *e = entry(s, file);
    if (e == NULL)
        e = add_entry(s, file, ref);
    free(e->ref);
    e->ref = al_xstrdup(ref);
    snprintf(e->recipe, sizeof(e->recipe), "%s", recipe);
    e->size = (uint64_t)st->st_size;
    e->ino = (uint64_t)st->st_ino;
    e->mtime_s = st->st_mtim.tv_sec;
    e->mtime_ns = st->st_mtim.tv_nsec;
}

void al_split_state_remove(al_split_state *s, const char *file)
{
    al_split_entry *e = entry(s, file);
    if (e == NULL)
        return;
    free(e->file);
    free(e->ref);
    *e = s->e[--s->n];
}

int al_split_state_save(const al_split_state *s, const char *dir, al_error **err)
{
    json_t *root = json_object();
    json_object_set_new(root, "tool", json_string("airlock-export --split image"));
    json_object_set_new(root, "recipe_version", json_integer(AL_SPLIT_RECIPE));
    json_t *list = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const al_split_entry *e = &s->e[i];
        json_t *o = json_object();
        json_object_set_new(o, "file", json_string(e->file));
        json_object_set_new(o, "ref", json_string(e->ref));
        json_object_set_new(o, "recipe", json_string(e->recipe));
        json_object_set_new(o, "size", json_integer((json_int_t)e->size));
        json_object_set_new(o, "inode", json_integer((json_int_t)e->ino));
        json_object_set_new(o, "mtime_s", json_integer(e->mtime_s));
        json_object_set_new(o, "mtime_ns", json_integer(e->mtime_ns));
        json_array_append_new(list, o);
    }
    json_object_set_new(root, "archives", list);
    char *text = al_json_document(root);
    _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, AL_SPLIT_STATE);
    int r = al_file_write_atomic(path, text, strlen(text), err);
    free(text);
    return r;
}
