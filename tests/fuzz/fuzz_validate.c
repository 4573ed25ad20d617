/*
 * tests/fuzz/fuzz_validate.c — the validators (common/validate.c) against
 * straightforward reference implementations written here.
 *
 * Input: u8 json max depth, u64 min, u64 max (for parse_u64), then the text
 * every function is given. Checked:
 *   utf8_valid           == a decoder driven by the RFC 3629 byte table
 *   utf8_sanitize        output valid UTF-8, NUL-free, and the input itself
 *                        when that was already valid and NUL-free
 *   validate_client_id,  == valid UTF-8 without C0/DEL/C1 code points,
 *   validate_text           within the length bound
 *   validate_id          == 1..63 bytes of [A-Za-z0-9._:-]
 *   json_depth           == a bracket count outside strings, capped at max+1
 *   parse_u64            == strtoull on all-digit text, within [min, max]
 */
#include "fuzz_util.h"

#include <errno.h>

#include "bounds.h"
#include "validate.h"

/* ------------------------------------------------------------------------
 * UTF-8: the well-formed byte sequences of RFC 3629 section 4 (the Unicode
 * standard's table 3-7), one row per lead-byte range. Returns the length of
 * the sequence at s and its code point, 0 when ill-formed.
 * ------------------------------------------------------------------------ */

struct utf8_row {
    uint8_t lo, hi;   /* lead byte range */
    uint8_t n;        /* sequence length */
    uint8_t lo2, hi2; /* second byte range */
};

static const struct utf8_row utf8_rows[] = {
    {0x00, 0x7f, 1, 0, 0},       {0xc2, 0xdf, 2, 0x80, 0xbf}, {0xe0, 0xe0, 3, 0xa0, 0xbf},
    {0xe1, 0xec, 3, 0x80, 0xbf}, {0xed, 0xed, 3, 0x80, 0x9f}, {0xee, 0xef, 3, 0x80, 0xbf},
    {0xf0, 0xf0, 4, 0x90, 0xbf}, {0xf1, 0xf3, 4, 0x80, 0xbf}, {0xf4, 0xf4, 4, 0x80, 0x8f},
};

static size_t ref_utf8_seq(const uint8_t *s, size_t len, uint32_t *cp)
{
    for (size_t r = 0; r < sizeof(utf8_rows) / sizeof(utf8_rows[0]); r++) {
        const struct utf8_row *row = &utf8_rows[r];
        if (s[0] < row->lo || s[0] > row->hi) {
            continue;
        }
        if (len < row->n) {
            return 0;
        }
        if (row->n == 1) {
            *cp = s[0];
            return 1;
        }
        if (s[1] < row->lo2 || s[1] > row->hi2) {
            return 0;
        }
        for (size_t i = 2; i < row->n; i++) {
            if (s[i] < 0x80 || s[i] > 0xbf) {
                return 0;
            }
        }
        /* The code point, for the control-character check. */
        static const uint8_t lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
        uint32_t v = s[0] & lead_mask[row->n];
        for (size_t i = 1; i < row->n; i++) {
            v = v << 6 | (s[i] & 0x3f);
        }
        *cp = v;
        return row->n;
    }
    return 0; /* 80..c1, f5..ff never lead */
}

static bool ref_utf8_valid(const uint8_t *s, size_t len, bool no_controls)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = ref_utf8_seq(s + i, len - i, &cp);
        if (n == 0) {
            return false;
        }
        if (no_controls && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))) {
            return false;
        }
        i += n;
    }
    return true;
}

static bool ref_id(const uint8_t *s, size_t len)
{
    if (len == 0 || len >= LIMIT_ID_BYTES) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-", s[i]) ||
            s[i] == '\0') {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------
 * JSON nesting: drop string contents (with their escapes) first, then count
 * brackets; a closer with nothing open is ignored.
 * ------------------------------------------------------------------------ */

static unsigned ref_json_depth(const char *s, size_t len, unsigned max)
{
    char *bare = malloc(len + 1);
    if (bare == NULL) {
        abort();
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '"') {
            bare[n++] = s[i];
            continue;
        }
        /* Skip to the closing quote (or the end): a backslash takes the
         * next character with it. */
        for (i++; i < len && s[i] != '"'; i++) {
            if (s[i] == '\\') {
                i++;
            }
        }
    }
    unsigned depth = 0, deepest = 0;
    for (size_t i = 0; i < n; i++) {
        if (bare[i] == '[' || bare[i] == '{') {
            depth++;
            deepest = depth > deepest ? depth : deepest;
        } else if ((bare[i] == ']' || bare[i] == '}') && depth > 0) {
            depth--;
        }
    }
    free(bare);
    /* json_depth may stop at the first level past max. */
    return deepest > max ? max + 1 : deepest;
}

/* ------------------------------------------------------------------------
 * Decimal numbers: strtoull, once the text is known to be digits only
 * (strtoull itself would take spaces, a sign and more).
 * ------------------------------------------------------------------------ */

static int ref_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    /* 1 to 20 digits (2^64 - 1 has 20), leading zeros counted. */
    if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 20) {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    unsigned max_depth = in_u8(&in) % 40;
    uint64_t lo = in_u64(&in), hi = in_u64(&in);
    /* Mostly the bounds the callers use. */
    switch (in_u8(&in) % 4) {
    case 0:
        lo = 0, hi = UINT64_MAX;
        break;
    case 1:
        lo = 1, hi = LIMIT_READ_MAX;
        break;
    case 2:
        lo %= 100000, hi %= 100000;
        break;
    default:
        break;
    }
    const uint8_t *s;
    size_t len = in_bytes(&in, in.left, &s);
    uint8_t *text = fuzz_dup(s, len); /* exact size: over-reads are caught */

    /* UTF-8 */
    bool valid = ref_utf8_valid(text, len, false);
    FUZZ_CHECK(utf8_valid(text, len) == valid, "utf8_valid says %d, reference %d", !valid, valid);

    char *clean = utf8_sanitize(text, len);
    FUZZ_CHECK(clean != NULL, "utf8_sanitize failed");
    size_t clen = strlen(clean);
    FUZZ_CHECK(clen <= 3 * len, "sanitized %zu bytes into %zu", len, clen);
    FUZZ_CHECK(utf8_valid((const uint8_t *)clean, clen) &&
                   ref_utf8_valid((const uint8_t *)clean, clen, false),
               "utf8_sanitize output is not valid UTF-8");
    if (valid && memchr(text, '\0', len) == NULL) {
        FUZZ_CHECK(clen == len && memcmp(clean, text, len) == 0,
                   "utf8_sanitize changed text that was already clean");
    }
    /* NUL-free: the string is as long as what it must hold. The good
     * sequences stay; each bad byte becomes at most one U+FFFD, and at least
     * one U+FFFD stands for any run of them. */
    size_t good = 0, bad = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = ref_utf8_seq(text + i, len - i, &cp);
        if (n == 0 || cp == 0) {
            bad++;
            i++;
        } else {
            good += n;
            i += n;
        }
    }
    FUZZ_CHECK(clen >= good + (bad ? 3 : 0) && clen <= good + 3 * bad,
               "sanitized %zu bytes (%zu good, %zu bad) into %zu", len, good, bad, clen);
    free(clean);

    /* Client ids and display text: printable UTF-8 within a bound. */
    bool printable = ref_utf8_valid(text, len, true);
    FUZZ_CHECK(validate_client_id((const char *)text, len) ==
                   (printable && len >= 1 && len < LIMIT_CLIENT_ID_BYTES),
               "validate_client_id disagrees with the reference on %zu bytes", len);
    FUZZ_CHECK(validate_text((const char *)text, len, LIMIT_NAME_BYTES) ==
                   (printable && len < LIMIT_NAME_BYTES),
               "validate_text disagrees with the reference on %zu bytes", len);

    /* Replica ids: the NUL-terminated prefix. */
    char *str = fuzz_strndup(text, len);
    size_t slen = strlen(str);
    FUZZ_CHECK(validate_id(str) == ref_id((const uint8_t *)str, slen),
               "validate_id(\"%s\") disagrees with the reference", str);

    /* JSON depth */
    unsigned got = json_depth((const char *)text, len, max_depth);
    unsigned want = ref_json_depth((const char *)text, len, max_depth);
    FUZZ_CHECK(got == want, "json_depth %u, reference %u (max %u)", got, want, max_depth);

    /* Decimal numbers: the text up to the first NUL, as a query value. */
    uint64_t v1 = 0x1234, v2 = 0x1234;
    int rc1 = parse_u64(str, lo, hi, &v1);
    int rc2 = ref_parse_u64(str, lo, hi, &v2);
    FUZZ_CHECK(rc1 == rc2, "parse_u64(\"%.40s\", %llu, %llu) returned %d, reference %d", str,
               (unsigned long long)lo, (unsigned long long)hi, rc1, rc2);
    FUZZ_CHECK(v1 == v2, "parse_u64 gave %llu, reference %llu", (unsigned long long)v1,
               (unsigned long long)v2);

    free(str);
    free(text);
    return 0;
}
