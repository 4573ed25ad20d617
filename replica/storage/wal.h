/*
 * replica/storage/wal.h — the durable log of one replica, in --data-dir.
 *
 * One append-only file of checksummed records: entries, truncation marks and
 * hard-state (epoch, vote, bootstrap configuration) records. Replaying it in
 * order rebuilds what the core needs at start. Writes are buffered in memory
 * and made durable together by wal_sync (group commit: one write + fdatasync
 * for everything a loop iteration produced).
 *
 * Recovery: a record cut short at the end of the file (a torn write from a
 * crash) is dropped and the file truncated there; a damaged record followed
 * by more data is corruption, and wal_open refuses it with a clear error
 * instead of silently losing acknowledged entries.
 */
#ifndef REPLICA_WAL_H
#define REPLICA_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

struct wal;

/* What replay found: the last hard state and the surviving entries, in index
 * order from 1. Strings and data point into memory owned by the struct. */
struct wal_recovered {
    struct core_hard_state hs;
    struct core_entry *entries;
    size_t n_entries;
    void *storage; /* private */
};

/* Open (creating dir and file if needed) and replay. On failure returns a
 * negative errno-style code and writes a human-readable reason to err. */
int wal_open(const char *dir, struct wal **out, struct wal_recovered *rec, char *err,
             size_t errlen);
void wal_recovered_free(struct wal_recovered *rec);

/* Buffer records; nothing is durable until wal_sync returns 0. */
int wal_append_state(struct wal *w, const struct core_hard_state *hs);
int wal_append_entries(struct wal *w, uint64_t truncate_from, const struct core_entry *e, size_t n);
/* Write everything buffered and fdatasync. 0, or a negative errno. */
int wal_sync(struct wal *w);
/* How long the fdatasync of the last wal_sync took, in nanoseconds (at
 * least 1); 0 when that call had nothing to write or failed. */
uint64_t wal_last_fsync_ns(const struct wal *w);
/* True when records are buffered and not yet synced. */
int wal_pending(const struct wal *w);
/* Bytes in the file (after recovery and syncs), for status and tests. */
uint64_t wal_size(const struct wal *w);
void wal_close(struct wal *w);

#endif
