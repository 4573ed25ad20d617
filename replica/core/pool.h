/*
 * replica/core/pool.h — variable-sized blocks carved from 64 KiB chunks,
 * for data that is freed roughly in the order it was allocated: the log
 * cache's entries and the client-id strings of sessions.
 *
 * A catch-up appends a million entries a second, and each took two
 * malloc/free pairs (the cached copy and the session's id): about a tenth
 * of a catching-up replica's profile, plus glibc consolidating its bins.
 * Here an allocation bumps a pointer in the current chunk and a free
 * decrements the chunk's count of live blocks; a chunk goes back to
 * malloc when its last block is freed. Blocks are byte-aligned (strings
 * and entry data need no more).
 */
#ifndef REPLICA_POOL_H
#define REPLICA_POOL_H

#include <stddef.h>

struct pool_chunk;

struct pool {
    struct pool_chunk *current; /* NULL until the first allocation */
};

/* NULL when out of memory. */
void *pool_alloc(struct pool *p, size_t n);
/* A block from pool_alloc of any pool, or NULL. */
void pool_free(void *block);
/* Every block must have been freed. */
void pool_destroy(struct pool *p);

#endif
