/*
 * common/validate.c — see validate.h.
 */
#include "validate.h"

#include <stdlib.h>
#include <string.h>

bool validate_id(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok || n + 1 >= LIMIT_ID_BYTES) {
            return false;
        }
    }
    return n > 0;
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when the bytes
 * there are ill-formed. *cp receives the code point. */
static size_t utf8_next(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    uint32_t min, v;
    if (b >= 0xc2 && b <= 0xdf) {
        need = 2, min = 0x80, v = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        need = 3, min = 0x800, v = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 4, min = 0x10000, v = b & 0x07;
    } else {
        return 0; /* continuation byte, overlong lead (c0, c1) or past f4 */
    }
    if (len < need) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return need;
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Valid UTF-8 of fewer than max bytes, without control characters. */
static bool printable_utf8(const char *s, size_t len, size_t max)
{
    if (len >= max) {
        return false;
    }
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(p + i, len - i, &cp);
        if (n == 0 || is_control(cp)) {
            return false;
        }
        i += n;
    }
    return true;
}

bool validate_client_id(const char *s, size_t len)
{
    return len > 0 && printable_utf8(s, len, LIMIT_CLIENT_ID_BYTES);
}

bool validate_text(const char *s, size_t len, size_t max)
{
    return printable_utf8(s, len, max);
}

bool utf8_valid(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

char *utf8_sanitize(const uint8_t *s, size_t len)
{
    /* Worst case: every byte becomes the 3-byte U+FFFD. */
    char *out = malloc(len * 3 + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n == 0 || cp == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += 1;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    return out;
}

unsigned json_depth(const char *s, size_t len, unsigned max)
{
    unsigned depth = 0, deepest = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_string) {
            if (ch == '\\') {
                i++; /* whatever follows is escaped */
            } else if (ch == '"') {
                in_string = false;
            }
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > max) {
                    return deepest;
                }
            }
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    /* 2^64 - 1 has 20 digits; leading zeros count, so a number is never
     * longer than that. */
    if (s[0] == '\0' || strnlen(s, 21) > 20) {
        return -1;
    }
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        unsigned digit = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return -1; /* past 2^64 - 1 */
        }
        v = v * 10 + digit;
    }
    if (v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
        cut--; /* s[cut] continues a character: cut before that character */
    }
    return cut;
}
