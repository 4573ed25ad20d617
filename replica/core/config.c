/*
 * replica/core/config.c — the text encoding of membership carried by
 * CONFIG log entries, one item per line:
 *   "c <cluster id>"  the cluster this configuration belongs to (once)
 *   "v <id>"          a voter
 *   "l <id>"          a learner
 *   "r <id>"          a replica removed on request, never added back
 * in that order (one canonical text per configuration, so decoding and
 * encoding again gives back the same bytes). Text keeps the log readable
 * with `strings`. Logs written before cluster
 * ids and removals existed hold only "v" and "l" lines and still decode.
 */
#include "core.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

static bool put_line(char *buf, size_t cap, size_t *used, char tag, const char *id)
{
    int w = snprintf(buf + *used, cap > *used ? cap - *used : 0, "%c %s\n", tag, id);
    if (w < 0) {
        return false;
    }
    *used += (size_t)w;
    return true;
}

size_t core_config_encode(const struct core_config *cfg, char *buf, size_t cap)
{
    size_t used = 0;
    bool ok = cfg->cluster_id[0] == '\0' || put_line(buf, cap, &used, 'c', cfg->cluster_id);
    for (unsigned i = 0; ok && i < cfg->n; i++) {
        ok = put_line(buf, cap, &used, cfg->members[i].voter ? 'v' : 'l', cfg->members[i].id);
    }
    for (unsigned i = 0; ok && i < cfg->n_removed; i++) {
        ok = put_line(buf, cap, &used, 'r', cfg->removed[i]);
    }
    return ok && used < cap ? used : 0;
}

const struct core_member *core_config_member(const struct core_config *cfg, const char *id)
{
    for (unsigned i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->members[i].id, id) == 0) {
            return &cfg->members[i];
        }
    }
    return NULL;
}

bool core_config_removed(const struct core_config *cfg, const char *id)
{
    for (unsigned i = 0; i < cfg->n_removed; i++) {
        if (strcmp(cfg->removed[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* One line's id into `out`: the whole rest of the line, in the alphabet.
 * An id holding a NUL, a space or anything else is garbage. */
static bool take_id(const uint8_t *text, size_t len, char out[CORE_ID_MAX])
{
    if (len == 0 || len >= CORE_ID_MAX) {
        return false;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return validate_id(out) && strlen(out) == len;
}

int core_config_decode(const uint8_t *data, size_t len, struct core_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t line = nl ? (size_t)(nl - (data + pos)) : len - pos;
        char id[CORE_ID_MAX];
        if (line < 3 || data[pos + 1] != ' ' || !take_id(data + pos + 2, line - 2, id)) {
            return -1;
        }
        switch (data[pos]) {
        case 'c':
            if (pos != 0) {
                return -1;
            }
            memcpy(cfg->cluster_id, id, CORE_ID_MAX);
            break;
        case 'v':
        case 'l':
            if (cfg->n >= CORE_MAX_MEMBERS || cfg->n_removed > 0 ||
                core_config_member(cfg, id) != NULL) {
                return -1;
            }
            memcpy(cfg->members[cfg->n].id, id, CORE_ID_MAX);
            cfg->members[cfg->n++].voter = data[pos] == 'v';
            break;
        case 'r':
            if (cfg->n_removed >= CORE_MAX_REMOVED || core_config_removed(cfg, id)) {
                return -1;
            }
            memcpy(cfg->removed[cfg->n_removed++], id, CORE_ID_MAX);
            break;
        default:
            return -1;
        }
        pos += line + (nl ? 1 : 0);
    }
    /* A replica is a member or removed, never both. */
    for (unsigned i = 0; i < cfg->n_removed; i++) {
        if (core_config_member(cfg, cfg->removed[i]) != NULL) {
            return -1;
        }
    }
    return 0;
}
