/* Platforms: parsing, normalising, comparing and printing os/arch/variant (see platform.h). */
#include "platform.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

/* Characters a platform part may contain once lower-cased. The parts end up
 * in database rows and in export's file names ({arch}), so anything that
 * could act as a path separator or shell metacharacter is kept out. '-' is
 * accepted only from JSON (al_platform_set) because the alias "x86-64"
 * contains one; user input follows the stricter grammar of the header.
 * A part never starts with '.', so "." and ".." cannot appear. */
static bool part_char_ok(char c, bool allow_dash)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           (allow_dash && c == '-');
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void set_str(char *dst, size_t cap, const char *src)
{
    /* Callers have checked the length; snprintf keeps this safe anyway. */
    snprintf(dst, cap, "%s", src);
}

void al_platform_normalize(al_platform *p)
{
    /* Architecture aliases, as containerd's platforms.Normalize spells them. */
    if (strcmp(p->arch, "x86_64") == 0 || strcmp(p->arch, "x86-64") == 0)
        set_str(p->arch, sizeof(p->arch), "amd64");
    else if (strcmp(p->arch, "aarch64") == 0)
        set_str(p->arch, sizeof(p->arch), "arm64");
    else if (strcmp(p->arch, "i386") == 0 || strcmp(p->arch, "i686") == 0)
        set_str(p->arch, sizeof(p->arch), "386");
    else if (strcmp(p->arch, "armhf") == 0) {
        set_str(p->arch, sizeof(p->arch), "arm");
        if (p->variant[0] == '\0')
            set_str(p->variant, sizeof(p->variant), "v7");
    } else if (strcmp(p->arch, "armel") == 0) {
        /* armel is the soft-float ABI; containerd files it under arm/v6. */
        set_str(p->arch, sizeof(p->arch), "arm");
        if (p->variant[0] == '\0')
            set_str(p->variant, sizeof(p->variant), "v6");
    }

    bool versioned = strcmp(p->arch, "arm") == 0 || strcmp(p->arch, "arm64") == 0 ||
                     strcmp(p->arch, "amd64") == 0;
    /* "arm/7" means "arm/v7": registries and users write both. */
    if (versioned && all_digits(p->variant) && strlen(p->variant) + 1 < sizeof(p->variant)) {
        size_t n = strlen(p->variant);
        memmove(p->variant + 1, p->variant, n + 1);
        p->variant[0] = 'v';
    }

    if (strcmp(p->arch, "arm64") == 0 && strcmp(p->variant, "v8") == 0)
        p->variant[0] = '\0';
    else if (strcmp(p->arch, "amd64") == 0 && strcmp(p->variant, "v1") == 0)
        p->variant[0] = '\0';
    else if (strcmp(p->arch, "arm") == 0 && p->variant[0] == '\0')
        set_str(p->variant, sizeof(p->variant), "v7");
}

/* Copy one part of a parsed string into dst, checking its characters. */
static int parse_part(char *dst, size_t cap, const char *part, size_t n, const char *what,
                      const char *input, al_error **err)
{
    if (n == 0)
        return al_error_set(err, AL_E_USAGE, 0, "invalid platform \"%.100s\": empty %s", input,
                            what);
    if (n >= cap)
        return al_error_set(err, AL_E_USAGE, 0,
                            "invalid platform \"%.100s\": %s is too long (at most %zu characters)",
                            input, what, cap - 1);
    /* "." and ".." would be path components in export's file names. */
    if (part[0] == '.')
        return al_error_set(err, AL_E_USAGE, 0,
                            "invalid platform \"%.100s\": %s may not start with '.'", input, what);
    for (size_t i = 0; i < n; i++) {
        char c = part[i];
        if (c >= 'A' && c <= 'Z')
            return al_error_set(err, AL_E_USAGE, 0,
                                "invalid platform \"%.100s\": %s must be lower case", input, what);
        if (!part_char_ok(c, false))
            return al_error_set(err, AL_E_USAGE, 0,
                                "invalid platform \"%.100s\": unexpected character '%c' in %s "
                                "(allowed: a-z, 0-9, '_', '.')",
                                input, (c > 32 && c < 127) ? c : '?', what);
    }
    memcpy(dst, part, n);
    dst[n] = '\0';
    return 0;
}

int al_platform_parse(al_platform *out, const char *s, al_error **err)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || *s == '\0')
        return al_error_set(err, AL_E_USAGE, 0,
                            "invalid platform \"\": expected os/arch[/variant]");

    const char *slash1 = strchr(s, '/');
    if (slash1 == NULL)
        return al_error_set(
            err, AL_E_USAGE, 0,
            "invalid platform \"%.100s\": expected os/arch[/variant], e.g. linux/amd64", s);
    const char *arch = slash1 + 1;
    const char *slash2 = strchr(arch, '/');
    const char *variant = slash2 ? slash2 + 1 : NULL;
    if (variant != NULL && strchr(variant, '/') != NULL)
        return al_error_set(
            err, AL_E_USAGE, 0,
            "invalid platform \"%.100s\": too many parts (expected os/arch[/variant])", s);

    al_platform p;
    memset(&p, 0, sizeof(p));
    int r = parse_part(p.os, sizeof(p.os), s, (size_t)(slash1 - s), "os", s, err);
    if (r < 0)
        return r;
    r = parse_part(p.arch, sizeof(p.arch), arch, slash2 ? (size_t)(slash2 - arch) : strlen(arch),
                   "architecture", s, err);
    if (r < 0)
        return r;
    if (variant != NULL) {
        r = parse_part(p.variant, sizeof(p.variant), variant, strlen(variant), "variant", s, err);
        if (r < 0)
            return r;
    }
    al_platform_normalize(&p);
    *out = p;
    return 0;
}

int al_platform_parse_list(al_platform **out, size_t *n_out, const char *s, al_error **err)
{
    *out = NULL;
    *n_out = 0;
    if (s == NULL)
        s = "";
    /* At most one entry per comma-separated item. */
    size_t cap = 1;
    for (const char *c = s; *c; c++)
        if (*c == ',')
            cap++;
    _cleanup_free_ al_platform *list = al_xcalloc(cap, sizeof(*list));
    size_t n = 0;

    const char *item = s;
    for (;;) {
        const char *end = strchr(item, ',');
        size_t len = end ? (size_t)(end - item) : strlen(item);
        /* Tolerate "linux/amd64, linux/arm64" and a stray trailing comma. */
        while (len > 0 && (*item == ' ' || *item == '\t')) {
            item++;
            len--;
        }
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            len--;
        if (len > 0) {
            _cleanup_free_ char *one = al_xstrndup(item, len);
            al_platform p;
            int r = al_platform_parse(&p, one, err);
            if (r < 0)
                return r;
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = al_platform_equal(&list[i], &p);
            if (!dup)
                list[n++] = p;
        }
        if (end == NULL)
            break;
        item = end + 1;
    }
    if (n == 0)
        return al_error_set(err, AL_E_USAGE, 0,
                            "empty platform list \"%.100s\": expected e.g. linux/amd64,linux/arm64",
                            s);
    *out = al_steal_ptr(&list);
    *n_out = n;
    return 0;
}

/* Lower-case src into dst; false when it does not fit or has a character
 * outside the platform alphabet. NULL becomes "". */
static bool set_field(char *dst, size_t cap, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return true;
    }
    size_t n = strlen(src);
    if (n >= cap || src[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!part_char_ok(c, true))
            return false;
        dst[i] = c;
    }
    dst[n] = '\0';
    return true;
}

bool al_platform_set(al_platform *out, const char *os, const char *arch, const char *variant)
{
    al_platform p;
    memset(&p, 0, sizeof(p));
    if (!set_field(p.os, sizeof(p.os), os) || !set_field(p.arch, sizeof(p.arch), arch) ||
        !set_field(p.variant, sizeof(p.variant), variant))
        return false;
    al_platform_normalize(&p);
    *out = p;
    return true;
}

bool al_platform_equal(const al_platform *a, const al_platform *b)
{
    return strcmp(a->os, b->os) == 0 && strcmp(a->arch, b->arch) == 0 &&
           strcmp(a->variant, b->variant) == 0;
}

bool al_platform_is_unknown(const al_platform *p)
{
    return strcmp(p->os, "unknown") == 0 && strcmp(p->arch, "unknown") == 0;
}

char *al_platform_format(const al_platform *p, char *buf, size_t len)
{
    if (p->variant[0])
        snprintf(buf, len, "%s/%s/%s", p->os, p->arch, p->variant);
    else
        snprintf(buf, len, "%s/%s", p->os, p->arch);
    return buf;
}

char *al_platform_arch_tag(const al_platform *p, char *buf, size_t len)
{
    if (p->variant[0])
        snprintf(buf, len, "%s-%s", p->arch, p->variant);
    else
        snprintf(buf, len, "%s", p->arch);
    return buf;
}

void al_platform_host(al_platform *out)
{
    struct utsname u;
    const char *machine = "unknown";
    if (uname(&u) == 0)
        machine = u.machine;

    /* 32-bit ARM kernels report the core's ISA level ("armv7l", "armv6l",
     * "armv8l" for a 32-bit userland on a 64-bit core); the digit is the
     * variant. Everything else goes through the ordinary aliases. */
    if (strncmp(machine, "armv", 4) == 0 && machine[4] >= '5' && machine[4] <= '8') {
        char variant[3] = {'v', machine[4], '\0'};
        al_platform_set(out, "linux", "arm", variant);
        return;
    }
    if (!al_platform_set(out, "linux", machine, NULL))
        al_platform_set(out, "linux", "unknown", NULL);
}
