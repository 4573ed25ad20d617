/*
 * tests/fuzz/fuzz_core_ops.h — the input format of fuzz_core, shared with
 * the seed generator (make_corpus.c).
 *
 * An input is an 8-byte seed for the cores' random numbers, then ops until
 * the bytes run out. Each op is one byte: the low 7 bits (mod FOP_COUNT)
 * say which, bit 7 asks for a core_flush of the node it touched afterwards
 * (the adapter flushes once per loop iteration; leaving it out batches).
 * Most ops then read a node byte (mod FUZZ_CORE_NODES) and their arguments.
 */
#ifndef FUZZ_CORE_OPS_H
#define FUZZ_CORE_OPS_H

#define FUZZ_CORE_NODES 3 /* real cores r1..r3 */
#define FOP_FLUSH_BIT   0x80

enum fuzz_core_op {
    FOP_TICK,          /* node, u16 ms (mod 1024) to advance the clock, then core_tick */
    FOP_TICK_DEADLINE, /* node: the clock to its core_next_deadline, then core_tick */
    FOP_DELIVER,       /* u8: queued message (mod queue length) delivered and removed */
    FOP_DELIVER_ALL,   /* every message queued now, in order, each receiver flushed */
    FOP_DUPLICATE,     /* u8: queued message delivered and kept */
    FOP_DROP,          /* u8: queued message removed */
    FOP_FORGE,         /* node, sender, type, fields: a message no core sent */
    FOP_MUTATE,        /* u8 message, u8 field, counter: a queued message altered, delivered */
    FOP_CLIENT,        /* node, u8 client id choice, u8 data choice [, u8 len, bytes] */
    FOP_PEER_UP,       /* node, u8 id choice */
    FOP_PEER_DOWN,     /* node, u8 id choice */
    FOP_FLUSH,         /* node */
    FOP_RESTART,       /* node: core_free, core_new from what it persisted */
    FOP_READ,          /* node: core_read_index */
    FOP_REMOVE,        /* node, u8 id choice: core_remove_member */
    FOP_LISTED,        /* node, u8 id choice, bool: core_peer_listed */
    FOP_COUNT,
};

#endif
