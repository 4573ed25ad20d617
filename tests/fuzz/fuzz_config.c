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

static bool same_config(const struct core_config *a, const struct core_config *b)
{
    if (a->n != b->n || a->n_removed != b->n_removed || strcmp(a->cluster_id, b->cluster_id)) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        if (a->members[i].voter != b->members[i].voter ||
            strcmp(a->members[i].id, b->members[i].id) != 0) {
            return false;
        }
    }
    for (unsigned i = 0; i < a->n_removed; i++) {
        if (strcmp(a->removed[i], b->removed[i]) != 0) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *text = fuzz_dup(data, size);
    struct core_config cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    int rc = core_config_decode(text, size, &cfg);
    free(text);
    FUZZ_CHECK(rc == 0 || rc == -1, "core_config_decode returned %d", rc);
    if (rc != 0) {
        return 0;
    }
    FUZZ_CHECK(cfg.n <= CORE_MAX_MEMBERS && cfg.n_removed <= CORE_MAX_REMOVED,
               "%u members, %u removed", cfg.n, cfg.n_removed);
    for (unsigned i = 0; i < cfg.n; i++) {
        FUZZ_CHECK(validate_id(cfg.members[i].id),
                   "member %u decoded with id \"%s\", which fails validate_id", i,
                   cfg.members[i].id);
        FUZZ_CHECK(!core_config_removed(&cfg, cfg.members[i].id), "member %u also removed", i);
    }
    for (unsigned i = 0; i < cfg.n_removed; i++) {
        FUZZ_CHECK(validate_id(cfg.removed[i]), "removed id %u fails validate_id", i);
    }
    FUZZ_CHECK(cfg.cluster_id[0] == '\0' || validate_id(cfg.cluster_id),
               "cluster id fails validate_id");

    /* Encode: the same text (the decoder takes the canonical order only). */
    char buf[CORE_CONFIG_TEXT_MAX];
    size_t k = core_config_encode(&cfg, buf, sizeof(buf));
    if (size == 0) {
        FUZZ_CHECK(k == 0, "nothing decoded, encoded as %zu bytes", k);
        return 0;
    }
    FUZZ_CHECK(k > 0, "encoding a decoded configuration failed");
    bool newline_added = data[size - 1] != '\n';
    FUZZ_CHECK(k == size + newline_added && memcmp(buf, data, size) == 0 &&
                   (!newline_added || buf[size] == '\n'),
               "decode then encode does not give back the input (%zu bytes from %zu)", k, size);

    /* ... which decodes to the same configuration. */
    struct core_config again;
    FUZZ_CHECK(core_config_decode((const uint8_t *)buf, k, &again) == 0,
               "encoded configuration does not decode");
    FUZZ_CHECK(same_config(&cfg, &again), "configuration changed in the round trip");

    /* The NUL needs room too: one byte short fails, exactly enough works. */
    char *exact = malloc(k + 1);
    FUZZ_CHECK(exact != NULL, "out of memory");
    FUZZ_CHECK(core_config_encode(&cfg, exact, k) == 0, "encoded into a buffer without room");
    FUZZ_CHECK(core_config_encode(&cfg, exact, k + 1) == k && memcmp(exact, buf, k) == 0,
               "encoding into an exact buffer differs");
    free(exact);
    return 0;
}
