/*
 * replica/core/pool.c — see pool.h.
 */
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>

struct pool_chunk {
    struct pool *owner; /* the pool allocating from it; NULL once retired */
    size_t live;        /* blocks not yet freed */
    size_t used;
    size_t cap;
    unsigned char data[];
};

/* Each block is preceded by its chunk's address. */
struct block_head {
    struct pool_chunk *chunk;
};

#define POOL_CHUNK_BYTES (64u * 1024)

/* Under AddressSanitizer every block is its own malloc, so a use after
 * free of a cached entry is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_EVERY_BLOCK_ITS_OWN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_EVERY_BLOCK_ITS_OWN 1
#endif
#endif
#ifndef POOL_EVERY_BLOCK_ITS_OWN
#define POOL_EVERY_BLOCK_ITS_OWN 0
#endif
#define POOL_HEAD (sizeof(struct block_head))

static struct pool_chunk *chunk_new(struct pool *owner, size_t cap)
{
    struct pool_chunk *c = malloc(sizeof(*c) + cap);
    if (c != NULL) {
        c->owner = owner;
        c->live = 0;
        c->used = 0;
        c->cap = cap;
    }
    return c;
}

/* The chunk leaves the pool: it is freed with its last block. */
static void retire(struct pool_chunk *c)
{
    c->owner = NULL;
    if (c->live == 0) {
        free(c);
    }
}

void *pool_alloc(struct pool *p, size_t n)
{
    if (n > SIZE_MAX / 2) {
        return NULL;
    }
    /* Heads stay pointer-aligned: round every block to a head's size. */
    size_t need = POOL_HEAD + ((n + POOL_HEAD - 1) & ~(POOL_HEAD - 1));
    struct pool_chunk *c;
    if (need > POOL_CHUNK_BYTES / 4 || POOL_EVERY_BLOCK_ITS_OWN) {
        /* Large (a 4 KiB request's entry is not): a chunk of its own,
         * freed with it, so it never pins a shared chunk. */
        c = chunk_new(NULL, need);
        if (c == NULL) {
            return NULL;
        }
    } else {
        c = p->current;
        if (c != NULL && c->live == 0) {
            c->used = 0; /* everything in it was freed: start over */
        }
        if (c == NULL || c->cap - c->used < need) {
            struct pool_chunk *n_chunk = chunk_new(p, POOL_CHUNK_BYTES);
            if (n_chunk == NULL) {
                return NULL;
            }
            if (c != NULL) {
                retire(c);
            }
            p->current = c = n_chunk;
        }
    }
    struct block_head *h = (struct block_head *)(c->data + c->used);
    h->chunk = c;
    c->used += need;
    c->live++;
    return h + 1;
}

void pool_free(void *block)
{
    if (block == NULL) {
        return;
    }
    struct pool_chunk *c = ((struct block_head *)block - 1)->chunk;
    if (--c->live == 0 && c->owner == NULL) {
        free(c); /* retired, or a large block's own: the current one is reused */
    }
}

void pool_destroy(struct pool *p)
{
    if (p->current != NULL) {
        retire(p->current);
        p->current = NULL;
    }
}
