/*
 * replica/core/idmap.h — client id -> log index, for applying a retried
 * request once. Open addressing with linear probing and backward-shift
 * deletion (no tombstones). Keys are borrowed: the caller keeps each key's
 * string alive, unchanged, while it is in the map.
 */
#ifndef REPLICA_IDMAP_H
#define REPLICA_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
    const char *key; /* NULL: empty */
    uint64_t value;
    uint64_t hash; /* of key: probes compare it before touching the string */
};

struct idmap {
    struct idmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t len;
};

void idmap_init(struct idmap *m);
void idmap_free(struct idmap *m);
/* 0 on success, -1 when out of memory. Replaces an existing key's value
 * (and the string it borrows: `key` from then on). */
int idmap_put(struct idmap *m, const char *key, uint64_t value);
/* The value, or 0 when absent (log indices start at 1). */
uint64_t idmap_get(const struct idmap *m, const char *key);
void idmap_del(struct idmap *m, const char *key);
/* Delete key only while it maps to value (value 0: whatever it maps to). */
void idmap_del_if(struct idmap *m, const char *key, uint64_t value);

#endif
