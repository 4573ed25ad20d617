/*
 * tests/fuzz/fuzz_core_ops.h — the input format of fuzz_core, shared with
 * the seed generator (make_corpus.c).
 *
 * An input is an 8-byte seed, then ops until the bytes run out. The seed
 * feeds the cores' random numbers, and its top 16 bits choose options
 * (FUZZ_SEED_* below): each node's cache_bytes, session_max and
 * session_ttl_ms, and whether restarts may use core_new. Each op is one byte: the low 7 bits (mod
 * FOP_COUNT) say which, bit 7 asks for a core_flush of the node it touched afterwards (the adapter
 * flushes once per loop iteration; leaving it out batches). Most ops then read a node byte (mod
 * FUZZ_CORE_NODES) and their arguments.
 */
#ifndef FUZZ_CORE_OPS_H
#define FUZZ_CORE_OPS_H

#define FUZZ_CORE_NODES 3 /* real cores r1..r3 */
#define FOP_FLUSH_BIT   0x80

/* Options from the seed's top 16 bits (o = seed >> 48):
 *   bits 2i..2i+1  node i's cache_bytes: 0, 1, 600, 0 (0: the default 8 MiB)
 *   bits 6..7      session_max: 0 (default 65536), 1, 3, 8
 *   bit 8          session_ttl_ms 700 (else 0: no limit by time)
 *   bit 9          restart with core_new when the log starts at 1 */
#define FUZZ_SEED_OPTIONS(seed) ((unsigned)((seed) >> 48))

enum fuzz_core_op {
    FOP_TICK,          /* node, u16 ms (mod 1024) to advance the clock, then core_tick */
    FOP_TICK_DEADLINE, /* node: the clock to its core_next_deadline, then core_tick */
    FOP_DELIVER,       /* u8: queued message (mod queue length) delivered and removed */
    FOP_DELIVER_ALL,   /* every message queued now, in order, each receiver flushed */
    FOP_DUPLICATE,     /* u8: queued message delivered and kept */
    FOP_DROP,          /* u8: queued message removed */
    FOP_FORGE,         /* node, sender, type, fields: a message no core sent */
    FOP_MUTATE,        /* u8 message, u8 field, counter: a queued message altered, delivered */
    FOP_CLIENT,        /* node, u8 client id choice, u8 data choice [, u8 len, bytes],
                          u8 seen_index choice [, counter] */
    FOP_PEER_UP,       /* node, u8 id choice */
    FOP_PEER_DOWN,     /* node, u8 id choice */
    FOP_FLUSH,         /* node */
    FOP_RESTART,       /* node: core_free, core_open from what it persisted */
    FOP_READ,          /* node: core_read_index */
    FOP_REMOVE,        /* node, u8 id choice: core_remove_member */
    FOP_LISTED,        /* node, u8 id choice, bool: core_peer_listed */
    FOP_COMPACT,       /* node, u8 keep choice [, u8]: core_compact */
    FOP_STORE_FAIL,    /* node, u8: its next (u8 % 4) reads by the core fail with -EIO */
    FOP_DISK,          /* node, bool: core_storage_failed (sync fails) / core_storage_resumed */
    FOP_COUNT,
};

#endif
