/*
 * replica/core/config.c — the text encoding of membership carried by
 * CONFIG log entries: one member per line, "v <id>" (voter) or "l <id>"
 * (learner). Text keeps the log readable with `strings`.
 */
#include "core.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

size_t core_config_encode(const struct core_member *m, unsigned n, char *buf, size_t cap)
{
    size_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        int w = snprintf(buf + used, cap > used ? cap - used : 0, "%c %s\n", m[i].voter ? 'v' : 'l',
                         m[i].id);
        if (w < 0) {
            return 0;
        }
        used += (size_t)w;
    }
    return used < cap ? used : 0;
}

int core_config_decode(const uint8_t *data, size_t len, struct core_member *m, unsigned *n)
{
    *n = 0;
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t line = nl ? (size_t)(nl - (data + pos)) : len - pos;
        if (line < 3 || (data[pos] != 'v' && data[pos] != 'l') || data[pos + 1] != ' ' ||
            line - 2 >= CORE_ID_MAX || *n >= CORE_MAX_MEMBERS) {
            return -1;
        }
        m[*n].voter = data[pos] == 'v';
        memcpy(m[*n].id, data + pos + 2, line - 2);
        m[*n].id[line - 2] = '\0';
        /* The id must be the whole rest of the line: an id holding a NUL,
         * a space or anything outside the alphabet is garbage. */
        if (!validate_id(m[*n].id) || strlen(m[*n].id) != line - 2) {
            return -1;
        }
        (*n)++;
        pos += line + (nl ? 1 : 0);
    }
    return 0;
}
