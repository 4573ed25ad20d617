/*
 * common/arena.h — a bump allocator for one message's lifetime.
 *
 * Unpacking an Append of thousands of entries makes protobuf-c allocate each
 * entry, its strings and its data separately, and everything is freed once
 * the message is handled: in a catch-up profile malloc and free were as
 * costly as the log itself. The transport unpacks into an arena instead and
 * resets it after each message: allocation is a pointer bump, freeing is
 * nothing, and the memory is reused by the next message.
 */
#ifndef COMMON_ARENA_H
#define COMMON_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *chunks; /* newest first */
    size_t used;                /* bytes taken in the newest chunk */
    size_t peak;                /* bytes taken since the last reset */
    size_t keep_max;            /* a reset keeps at most this much (0: 4 MiB) */
};

/* Zeroed struct arena is ready. NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t size);
/* Forget everything allocated; keep one chunk big enough for the largest
 * message seen (up to keep_max), so steady traffic allocates nothing. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);
/* protobuf-c's allocator interface over the arena (free does nothing). */
ProtobufCAllocator arena_protobuf(struct arena *a);

#endif
