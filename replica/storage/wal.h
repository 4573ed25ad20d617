/*
 * replica/storage/wal.h — the durable log of one replica, in --data-dir.
 *
 * A segmented log of checksummed records (entries, truncation marks,
 * hard-state and checkpoint records) whose entries stay on disk: wal_open
 * rebuilds only a summary (hard state, last index, epoch runs, CONFIG
 * indexes, last checkpoint) and a sparse index, and entries are read back by
 * index with wal_read. Memory does not grow with the entries' data, and a
 * restart reads the footers of sealed segments instead of their records.
 * Writes are buffered in memory and made durable together by wal_sync (group
 * commit: one write + fdatasync for everything a loop iteration produced).
 *
 * Recovery: a record cut short at the end of the last segment (a torn write
 * from a crash) is dropped and the file truncated there; a damaged record
 * followed by more data, or any damaged record in an earlier segment, is
 * corruption, and wal_open refuses it with a clear error instead of silently
 * losing acknowledged entries. The files and their rules are in wal.c.
 */
#ifndef REPLICA_WAL_H
#define REPLICA_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

struct wal;

struct wal_options {
    /* A new segment starts once the current one would exceed this (footer
     * included); a single record larger than it gets a segment of its own.
     * 0: 64 MiB. At least 1 KiB. */
    uint64_t segment_bytes;
};

/* What recovery found. The arrays in core and the snapshot's bytes are
 * owned by this struct until wal_recovered_free. */
struct wal_recovered {
    struct core_recovered core; /* runs start at wal_first_index */
    /* The last snapshot saved (wal_save_snapshot); index 0 and no data when
     * there is none. */
    uint64_t snapshot_index;
    uint64_t snapshot_epoch;
    const uint8_t *snapshot_data;
    size_t snapshot_len;
    void *storage; /* private */
};

/* Open (creating dir if needed) and recover. o may be NULL (defaults). On
 * failure returns a negative errno-style code, *out NULL, and writes a
 * human-readable reason to err. */
int wal_open(const char *dir, const struct wal_options *o, struct wal **out,
             struct wal_recovered *rec, char *err, size_t errlen);
void wal_recovered_free(struct wal_recovered *rec);

/* Buffer records; nothing is durable until wal_sync returns 0. */
int wal_append_state(struct wal *w, const struct core_hard_state *hs);
/* Drop entries from truncate_from on (0: none; at least wal_first_index),
 * then append e[0..n), which must follow on. -EINVAL (gap, bad type, a
 * truncation below the first index) or -EMSGSIZE, and nothing buffered. */
int wal_append_entries(struct wal *w, uint64_t truncate_from, const struct core_entry *e, size_t n);
/* Replay keeps the checkpoint with the highest commit (the last of equals). */
int wal_append_checkpoint(struct wal *w, const struct core_checkpoint *cp);
/* Write everything buffered and fdatasync. 0, or a negative errno:
 * -ENOSPC (or another write error) keeps everything not yet durable
 * buffered, and a later call writes it, exactly once; a failed fdatasync
 * leaves the page cache in an unknown state, so the log is then broken and
 * every later call returns -EIO (restart, and recovery sorts it out). */
int wal_sync(struct wal *w);
/* How long the fdatasyncs of the last wal_sync took, in nanoseconds (at
 * least 1); 0 when that call had nothing to write or failed. */
uint64_t wal_last_fsync_ns(const struct wal *w);
/* True when records are buffered and not yet synced; how many bytes. */
int wal_pending(const struct wal *w);
size_t wal_pending_bytes(const struct wal *w);

/* Durable entries lo..hi (hi beyond the last durable index reads up to it),
 * as many as fit in max_bytes but at least one, each counting its data's
 * length + CORE_ENTRY_OVERHEAD (core_store's rule); with meta_only the data
 * is neither read nor checked (data NULL, len the real length), and entries
 * count the same, as the core sizes Appends. *out is lent until the next
 * wal_read or wal_close. 0; -ERANGE when lo is outside [wal_first_index,
 * last durable index] or hi < lo; -EILSEQ when a record read back is damaged
 * (wal_last_error names the file and offset); -EIO or another errno. */
int wal_read(struct wal *w, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
             const struct core_entry **out, size_t *n);
/* Why the last failing call failed ("" if none did). */
const char *wal_last_error(const struct wal *w);
/* A core_store reading through wal_read (arg = w), for core_new. */
struct core_store wal_store(struct wal *w);

/* The first entry still kept (1 until wal_drop_before removes some); the
 * log holds first..core.last_index, empty when first > last. */
uint64_t wal_first_index(const struct wal *w);
/* Deletes the oldest segments whose live entries are all below index,
 * never the last segment. 0 or a negative errno. */
int wal_drop_before(struct wal *w, uint64_t index);
/* Replace the whole log by the snapshot just saved: every segment goes,
 * and the next entry appended is `next` (its index + 1). */
int wal_reset(struct wal *w, uint64_t next);
/* Writes <dir>/snapshot atomically (temp file, fsync, rename, fsync of the
 * dir): an opaque blob standing for the entries up to index (of epoch),
 * handed back by wal_open. 0 or a negative errno. */
int wal_save_snapshot(struct wal *w, uint64_t index, uint64_t epoch, const void *data, size_t len);

/* Bytes in all segments (after recovery and syncs), for status and tests. */
uint64_t wal_size(const struct wal *w);
uint64_t wal_segment_count(const struct wal *w);
/* Crash-like: whatever is buffered is dropped, not synced. */
void wal_close(struct wal *w);

#endif
