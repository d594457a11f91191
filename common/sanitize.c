/* al_sanitize: text from outside made safe to print (escape controls and bad UTF-8, cap). */
#include "sanitize.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes available) that
 * encodes a printable character, or 0 when the byte at p must be escaped:
 * a control, a C1 control, a stray continuation byte, an overlong form, a
 * surrogate, a code point above U+10FFFF, or a sequence cut short. */
static size_t printable_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c >= 0x20 && c < 0x7f)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0; /* C0, DEL, continuation bytes, 0xc0/0xc1, 0xf5.. */
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    if (cp >= 0x80 && cp <= 0x9f)
        return 0; /* C1 controls: CSI (U+009B) starts an escape sequence too */
    return len;
}

char *al_sanitize_n(const char *s, size_t len, size_t max)
{
    if (s == NULL)
        return al_xstrdup("");
    const unsigned char *p = (const unsigned char *)s;
    /* The output never exceeds max bytes plus "..." and the NUL; every
     * input byte becomes at most four ("\xNN"). */
    size_t cap = (len > max / 4 ? max : len * 4) + 4;
    char *out = al_xmalloc(cap);
    size_t o = 0, i = 0;
    while (i < len) {
        size_t k = printable_len(p + i, len - i);
        size_t need = k > 0 ? k : 4;
        if (o + need > max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (k > 0) {
            memcpy(out + o, p + i, k);
            i += k;
        } else {
            static const char hex[] = "0123456789abcdef";
            out[o] = '\\';
            out[o + 1] = 'x';
            out[o + 2] = hex[p[i] >> 4];
            out[o + 3] = hex[p[i] & 0x0f];
            i++;
        }
        o += need;
    }
    out[o] = '\0';
    return out;
}

char *al_sanitize(const char *s, size_t max)
{
    return al_sanitize_n(s, s ? strlen(s) : 0, max);
}
