/*
 * tests/fuzz/fuzz_config.c — core_config_decode (replica/core/config.c), the
 * membership text of CONFIG log entries, on arbitrary bytes.
 *
 * When it accepts: at most LIMIT_MEMBERS members, every id passes
 * validate_id (so an id holding a newline, a space or a NUL never decodes),
 * and encoding gives back exactly the input (plus the final newline when
 * the input had none), which decodes to the same members. Encoding into a
 * buffer one byte too small fails rather than truncating.
 */
#include "fuzz_util.h"

#include "core/core.h"
#include "validate.h"

#define CONFIG_TEXT_MAX (CORE_MAX_MEMBERS * (CORE_ID_MAX + 3) + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *text = fuzz_dup(data, size);
    struct core_member m[CORE_MAX_MEMBERS];
    unsigned n = 0;
    memset(m, 0x5a, sizeof(m));
    int rc = core_config_decode(text, size, m, &n);
    free(text);
    FUZZ_CHECK(rc == 0 || rc == -1, "core_config_decode returned %d", rc);
    if (rc != 0) {
        return 0;
    }
    FUZZ_CHECK(n <= CORE_MAX_MEMBERS, "%u members", n);
    for (unsigned i = 0; i < n; i++) {
        FUZZ_CHECK(memchr(m[i].id, '\0', CORE_ID_MAX) != NULL, "member %u id not terminated", i);
        FUZZ_CHECK(validate_id(m[i].id),
                   "member %u decoded with id \"%s\", which fails validate_id", i, m[i].id);
    }

    /* Encode: the same text. */
    char buf[CONFIG_TEXT_MAX];
    size_t k = core_config_encode(m, n, buf, sizeof(buf));
    if (n == 0) {
        FUZZ_CHECK(k == 0 && size == 0, "no members from %zu bytes, encoded as %zu", size, k);
        return 0;
    }
    FUZZ_CHECK(k > 0, "encoding %u decoded members failed", n);
    bool newline_added = data[size - 1] != '\n';
    FUZZ_CHECK(k == size + newline_added && memcmp(buf, data, size) == 0 &&
                   (!newline_added || buf[size] == '\n'),
               "decode then encode does not give back the input (%zu bytes from %zu)", k, size);

    /* ... which decodes to the same members. */
    struct core_member m2[CORE_MAX_MEMBERS];
    unsigned n2 = 0;
    FUZZ_CHECK(core_config_decode((const uint8_t *)buf, k, m2, &n2) == 0,
               "encoded configuration does not decode");
    FUZZ_CHECK(n2 == n, "%u members, then %u", n, n2);
    for (unsigned i = 0; i < n; i++) {
        FUZZ_CHECK(m2[i].voter == m[i].voter && strcmp(m2[i].id, m[i].id) == 0,
                   "member %u changed in the round trip", i);
    }

    /* The NUL needs room too: one byte short fails, exactly enough works. */
    char *exact = malloc(k + 1);
    FUZZ_CHECK(exact != NULL, "out of memory");
    FUZZ_CHECK(core_config_encode(m, n, exact, k) == 0, "encoded into a buffer without room");
    FUZZ_CHECK(core_config_encode(m, n, exact, k + 1) == k && memcmp(exact, buf, k) == 0,
               "encoding into an exact buffer differs");
    free(exact);
    return 0;
}
