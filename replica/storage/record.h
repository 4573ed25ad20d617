/*
 * replica/storage/record.h — the checksummed record every log file is made
 * of, and the byte codecs of its payloads. Internal to replica/storage: the
 * layout is documented in wal.c, the one place that explains the format.
 *
 * Every integer is little-endian and encoded byte by byte, so the format
 * depends neither on the compiler's struct layout nor on the host's byte
 * order. Decoding goes through a cursor that turns any read past the end
 * into a cleared `ok` flag instead of a crash.
 */
#ifndef REPLICA_STORAGE_RECORD_H
#define REPLICA_STORAGE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"

#define REC_MAGIC       0x4c415752u /* the bytes "RWAL" */
#define REC_HEADER_SIZE 20
/* Far above any record we write (requests are capped at a few MiB), low
 * enough that a bogus length can never make us allocate gigabytes. */
#define REC_MAX_PAYLOAD (64u * 1024 * 1024)

enum rec_type {
    REC_STATE = 1,
    REC_ENTRY = 2,
    REC_TRUNCATE = 3,
    REC_CHECKPOINT = 4,
    REC_SEGMENT = 5, /* a segment's first record */
    REC_FOOTER = 6,  /* a sealed segment's last record */
};

/* The largest STATE payload: epoch, a vote and a full bootstrap list. */
#define REC_STATE_MAX       (8 + 4 + (CORE_ID_MAX - 1) + 4 + CORE_MAX_MEMBERS * (4 + CORE_ID_MAX - 1))
#define REC_CHECKPOINT_SIZE 24

/* ---- bytes (inline: no symbols for other libraries to clash with) ---- */

struct cursor {
    const uint8_t *p;
    size_t left;
    bool ok;
};

static inline uint8_t *put_u8(uint8_t *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

static inline uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

static inline uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    p = put_u32(p, (uint32_t)v);
    return put_u32(p, (uint32_t)(v >> 32));
}

static inline uint8_t *put_str(uint8_t *p, const void *s, size_t len)
{
    p = put_u32(p, (uint32_t)len);
    if (len > 0)
        memcpy(p, s, len);
    return p + len;
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static inline struct cursor cursor_of(const uint8_t *p, size_t len)
{
    return (struct cursor){.p = p, .left = len, .ok = true};
}

static inline const uint8_t *take(struct cursor *c, size_t n)
{
    const uint8_t *p = c->p;

    if (!c->ok || c->left < n) {
        c->ok = false;
        return NULL;
    }
    c->p += n;
    c->left -= n;
    return p;
}

static inline uint8_t take_u8(struct cursor *c)
{
    const uint8_t *p = take(c, 1);
    return p ? *p : 0;
}

static inline uint32_t take_u32(struct cursor *c)
{
    const uint8_t *p = take(c, 4);
    return p ? get_u32(p) : 0;
}

static inline uint64_t take_u64(struct cursor *c)
{
    const uint8_t *p = take(c, 8);
    return p ? get_u64(p) : 0;
}

static inline const uint8_t *take_str(struct cursor *c, uint32_t *len)
{
    *len = take_u32(c);
    return take(c, *len);
}

/* ---- the record header ---- */

/* Fills the 20-byte header in front of a payload already in place at
 * h + REC_HEADER_SIZE. */
void rec_seal(uint8_t *h, enum rec_type type, uint32_t len);
/* Checks a header: NULL when it is sound (then *type and *len are set),
 * else why not. The payload is not looked at. */
const char *rec_check_header(const uint8_t *h, uint8_t *type, uint32_t *len);
/* NULL when the payload matches the header's checksum, else why not. */
const char *rec_check_payload(const uint8_t *h);
bool rec_reserved_clear(const uint8_t *h);

/* ---- payloads ---- */

/* An entry as it lies in a buffer, before anything is copied out. */
struct entry_view {
    uint64_t index;
    uint64_t epoch;
    int64_t time_ms;
    uint8_t type;
    uint32_t clen, plen, dlen;
    const uint8_t *client, *primary, *data;
};

size_t rec_entry_len(size_t clen, size_t plen, size_t dlen);
uint8_t *rec_put_entry(uint8_t *p, const struct core_entry *e, size_t clen, size_t plen);
/* Parses a whole ENTRY payload; false when it is malformed. */
bool rec_take_entry(struct cursor *c, struct entry_view *v);
/* The fields before the data, and the data's length, from however much of
 * the payload is at hand (meta-only reads need not read the data). Returns
 * how many payload bytes that took, 0 when more are needed or malformed
 * (*need then says how many would do, or 0 for malformed). */
size_t rec_take_entry_meta(const uint8_t *p, size_t avail, size_t total, struct entry_view *v,
                           size_t *need);

/* STATE: false from rec_state_len when an id is not NUL-terminated
 * within its buffer or the bootstrap list is too long. */
bool rec_state_len(const struct core_hard_state *hs, size_t *len);
uint8_t *rec_put_state(uint8_t *p, const struct core_hard_state *hs);
bool rec_take_state(struct cursor *c, struct core_hard_state *hs);

uint8_t *rec_put_checkpoint(uint8_t *p, const struct core_checkpoint *cp);
bool rec_take_checkpoint(struct cursor *c, struct core_checkpoint *cp);
/* Replay keeps the checkpoint with the highest commit (the last of equals). */
void rec_checkpoint_keep(struct core_checkpoint *kept, const struct core_checkpoint *cp);

#endif
