/*
 * common/arena.c — see arena.h.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t cap;
    max_align_t data[]; /* cap bytes */
};

#define ARENA_ALIGN        (_Alignof(max_align_t))
#define ARENA_FIRST_CHUNK  (64u * 1024)
#define ARENA_KEEP_DEFAULT (4u * 1024 * 1024)

static struct arena_chunk *chunk_new(size_t cap)
{
    struct arena_chunk *c = malloc(sizeof(*c) + cap);
    if (c != NULL) {
        c->next = NULL;
        c->cap = cap;
    }
    return c;
}

void *arena_alloc(struct arena *a, size_t size)
{
    if (size > SIZE_MAX / 4) {
        return NULL;
    }
    size = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    struct arena_chunk *c = a->chunks;
    if (c == NULL || c->cap - a->used < size) {
        /* Doubling: a message needs O(log size) chunks, and the reset
         * after it merges them into one. */
        size_t cap = c ? c->cap * 2 : ARENA_FIRST_CHUNK;
        while (cap < size) {
            cap *= 2;
        }
        struct arena_chunk *n = chunk_new(cap);
        if (n == NULL) {
            return NULL;
        }
        n->next = c;
        a->chunks = n;
        a->used = 0;
        c = n;
    }
    void *p = (uint8_t *)c->data + a->used;
    a->used += size;
    a->peak += size;
    return p;
}

void arena_reset(struct arena *a)
{
    size_t keep_max = a->keep_max ? a->keep_max : ARENA_KEEP_DEFAULT;
    struct arena_chunk *c = a->chunks;
    if (c != NULL && (c->next != NULL || c->cap > keep_max)) {
        /* Several chunks: replace them with one that fits the whole
         * message, so the next one of that size needs a single chunk. */
        arena_free(a);
        size_t cap = ARENA_FIRST_CHUNK;
        while (cap < a->peak && cap < keep_max) {
            cap *= 2;
        }
        a->chunks = chunk_new(cap); /* NULL is fine: allocated on demand */
    }
    a->used = 0;
    a->peak = 0;
}

void arena_free(struct arena *a)
{
    while (a->chunks) {
        struct arena_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
    a->used = 0;
}

static void *pb_alloc(void *data, size_t size)
{
    return arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    (void)p; /* released by arena_reset */
}

ProtobufCAllocator arena_protobuf(struct arena *a)
{
    return (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
}
