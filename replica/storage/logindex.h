/*
 * replica/storage/logindex.h — what the log keeps in memory about entries
 * that stay on disk: the range of live indexes, a sparse index of where
 * they lie, the epoch runs and the indexes of CONFIG entries. Internal to
 * replica/storage; no I/O here.
 *
 * A point {index, seq, offset} says: the live entry `index` is the record at
 * `offset` in segment `seq`, and the live entries after it, up to the next
 * point's index (excluded), follow it in that segment in order (other
 * records may lie in between, never a TRUNCATE that removes them). Points
 * are kept for the first live entry of every segment, for the first entry
 * after every truncation, and for every index i with (i - 1) % IX_POINT_EVERY
 * == 0: a read seeks to the nearest point at or before what it wants and
 * walks from there. A truncation at `from` drops the points, runs and config
 * indexes at or above it, which is what makes stale entries unreachable.
 *
 * The same structure describes one segment's share of the log (a slice),
 * which is what a segment's footer records.
 */
#ifndef REPLICA_STORAGE_LOGINDEX_H
#define REPLICA_STORAGE_LOGINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define IX_POINT_EVERY 64

struct ix_point {
    uint64_t index;
    uint64_t seq;
    uint64_t offset;
};

struct log_index {
    uint64_t first; /* the live entries are first..last; first == last + 1 when none */
    uint64_t last;
    struct ix_point *points;
    size_t n_points, cap_points;
    struct core_epoch_run *runs; /* ascending, consecutive runs of different epochs */
    size_t n_runs, cap_runs;
    uint64_t *configs;
    size_t n_configs, cap_configs;
    bool need_point; /* the next entry gets a point whatever its index */
};

/* An empty log whose first entry will be `first`. */
void ix_init(struct log_index *ix, uint64_t first);
void ix_free(struct log_index *ix);
/* Entry `index` (which must be last + 1) lies at offset in segment seq.
 * 0, or -ENOMEM (and nothing changed). */
int ix_add_entry(struct log_index *ix, uint64_t index, uint64_t epoch, enum core_entry_type type,
                 uint64_t seq, uint64_t offset);
/* A TRUNCATE record: live entries from `from` on are gone. */
void ix_cut(struct log_index *ix, uint64_t from);
/* The next entry starts a segment: it gets a point. */
void ix_segment_start(struct log_index *ix);
/* The epoch of entry last; 0 when there is none. */
uint64_t ix_last_epoch(const struct log_index *ix);
/* Position of the point with the greatest index <= index (first <= index
 * <= last), in points[]. */
size_t ix_find(const struct log_index *ix, uint64_t index);
/* Copies into *out the share of the log held by segment seq, the last one
 * with live entries or after them: its points, and the runs and config
 * indexes of its live entries. 0 or -ENOMEM. */
int ix_slice(const struct log_index *ix, uint64_t seq, struct log_index *out);
/* How many points, runs and config indexes ix_slice would copy. */
void ix_slice_counts(const struct log_index *ix, uint64_t seq, size_t *points, size_t *runs,
                     size_t *configs);
/* Whether segment seq holds live entries, and which (lo..hi). */
bool ix_segment_live(const struct log_index *ix, uint64_t seq, uint64_t *lo, uint64_t *hi);
/* The epoch of entry index, 0 when it is outside first..last. */
uint64_t ix_epoch_at(const struct log_index *ix, uint64_t index);
/* Position in runs[] of the run holding index (first <= index <= last). */
size_t ix_run_at(const struct log_index *ix, uint64_t index);
/* Position in configs[] of the first config index >= index. */
size_t ix_config_from(const struct log_index *ix, uint64_t index);
/* Appends a slice taken after this log's end (a segment's share), after
 * cutting at min_truncate (0: none). The caller checked it follows on. */
int ix_append(struct log_index *ix, const struct log_index *slice, uint64_t min_truncate);
/* Forgets the segments before seq (deleted): first becomes the first live
 * entry left, runs and config indexes below it go. */
void ix_forget_before(struct log_index *ix, uint64_t seq);

#endif
