/*
 * replica/core/idmap.c — see idmap.h.
 */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    /* FNV-1a: ids are short and not adversarial enough to need SipHash. */
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void idmap_init(struct idmap *m)
{
    memset(m, 0, sizeof(*m));
}

void idmap_free(struct idmap *m)
{
    free(m->slots);
    idmap_init(m);
}

/* The slot holding key (hash h), or the empty one where it would go. A
 * catch-up notes every entry's id: comparing stored hashes first keeps a
 * probe from chasing every key string through memory. */
static size_t find(const struct idmap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key != NULL &&
           (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0)) {
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(struct idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct idmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (m->slots == NULL) {
        m->slots = old;
        return -1;
    }
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != NULL) {
            m->slots[find(m, old[i].key, old[i].hash)] = old[i];
        }
    }
    free(old);
    return 0;
}

int idmap_put(struct idmap *m, const char *key, uint64_t value)
{
    /* Keep the load under 1/2 so probes stay short. */
    if ((m->len + 1) * 2 > m->cap && grow(m) != 0) {
        return -1;
    }
    uint64_t h = hash(key);
    size_t i = find(m, key, h);
    if (m->slots[i].key == NULL) {
        m->len++;
    }
    m->slots[i].hash = h;
    m->slots[i].key = key; /* an existing key's entry now borrows this string */
    m->slots[i].value = value;
    return 0;
}

uint64_t idmap_get(const struct idmap *m, const char *key)
{
    if (m->cap == 0) {
        return 0;
    }
    size_t i = find(m, key, hash(key));
    return m->slots[i].key ? m->slots[i].value : 0;
}

void idmap_del(struct idmap *m, const char *key)
{
    idmap_del_if(m, key, 0);
}

void idmap_del_if(struct idmap *m, const char *key, uint64_t value)
{
    if (m->cap == 0) {
        return;
    }
    size_t mask = m->cap - 1;
    size_t i = find(m, key, hash(key));
    if (m->slots[i].key == NULL || (value != 0 && m->slots[i].value != value)) {
        return;
    }
    m->slots[i].key = NULL;
    m->len--;
    /* Backward-shift: move later members of the probe run into the hole so
     * lookups never stop early at it. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL) {
            return;
        }
        size_t home = m->slots[j].hash & mask;
        /* Can slot j's entry live at i? Only if i lies cyclically in [home, j). */
        int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
}
