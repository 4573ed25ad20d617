/*
 * replica/storage/wal_internal.h — what the WAL's files share: the handle,
 * the segment table, file names and the window through which segments are
 * read. Internal to replica/storage; the format is documented in wal.c.
 *
 *   wal.c           format, appends, group commit, rollover, sealing
 *   wal_read.c      reads by index through the sparse index
 *   wal_open.c      recovery: legacy migration, footers, scans, torn tails
 *   wal_retain.c    dropping old segments, the snapshot file
 */
#ifndef REPLICA_STORAGE_WAL_INTERNAL_H
#define REPLICA_STORAGE_WAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/logindex.h"
#include "storage/record.h"
#include "storage/wal.h"

#define WAL_LOCK_NAME     "wal.lock"
#define WAL_LEGACY_NAME   "wal.log"
#define WAL_SNAPSHOT_NAME "snapshot"
#define WAL_TMP_SUFFIX    ".tmp"
#define WAL_NAME_MAX      32

#define WAL_FORMAT_VERSION 1
/* Indexes stay below the counters' limit (bounds.h), so a segment's base,
 * last index + 1, never overflows: replay refuses more, appends too. */
#define WAL_INDEX_MAX       LIMIT_COUNTER_MAX
#define WAL_DEFAULT_SEGMENT (64ull * 1024 * 1024)
#define WAL_MIN_SEGMENT     1024
#define WAL_TRAILER_SIZE    24
#define WAL_TRAILER_MAGIC   0x4c545752u /* the bytes "RWTL" */
#define WAL_SEGMENT_FIXED   (4 + 8 + 8) /* version, seq, base; then state, checkpoint */
#define WAL_FOOTER_FIXED    (4 + 8 * 5 + 4 * 3)
/* Buffers grown beyond these by a burst are given back afterwards. */
#define WAL_KEEP_BUFFER (1u * 1024 * 1024)
#define WAL_KEEP_READ   (4u * 1024 * 1024)
#define WAL_READ_CHUNK  (256u * 1024) /* read-ahead when streaming */
#define WAL_READ_SEEK   (16u * 1024)  /* when not */

#define WAL_ADVICE "Move the data dir aside to resync this replica from its peers."

struct segment {
    uint64_t seq;
    uint64_t base;         /* the first index it may hold (its header's) */
    uint64_t start;        /* where its records start: after the header */
    uint64_t end;          /* where they end: the footer once sealed, else the synced size */
    uint64_t size;         /* bytes in the file */
    uint64_t min_truncate; /* smallest TRUNCATE from in it; 0: none */
    bool sealed;
};

/* Bytes of one segment file, read ahead in chunks (pread, never mmap). */
struct window {
    uint8_t *buf;
    size_t cap;
    uint64_t seq; /* whose bytes they are; UINT64_MAX: nobody's */
    uint64_t off;
    size_t len;
};

struct wal {
    char *dir;
    int dir_fd;
    int lock_fd;
    uint64_t segment_bytes;

    struct segment *segs; /* ascending seq, consecutive; the last may be open */
    size_t n_segs, cap_segs;
    int cur_fd;      /* the last segment, open for appends; -1 once sealed or none */
    int rd_fd;       /* a closed segment open for reading */
    uint64_t rd_seq; /* which one; UINT64_MAX: none */

    /* What is durable. */
    struct log_index ix;
    struct core_hard_state hs;
    struct core_checkpoint cp;

    /* Encoded records not yet written. */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    uint64_t buf_last; /* the last index, counting buffered appends */

    /* Reads: file bytes, and what is lent to the caller. */
    struct window win;
    struct core_entry *out;
    size_t out_cap;
    uint8_t *arena;
    size_t arena_cap;

    uint64_t fsync_ns; /* the fdatasyncs of the last wal_sync */
    bool broken;       /* an fdatasync failed: nothing more is written */
    char err[512];     /* wal_last_error */
};

void wal_set_err(struct wal *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wal_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "wal-<16 hex digits>.seg", with WAL_TMP_SUFFIX while being created. */
void wal_segment_name(char *out, uint64_t seq, bool tmp);
/* Parses a segment's name; false for any other name. */
bool wal_parse_segment_name(const char *name, uint64_t *seq);
struct segment *wal_segment(struct wal *w, uint64_t seq);

/* Bytes [off, off + n) of segment seq (file fd), read no further than
 * limit: 0 and *p, 1 when they would pass limit, or -errno. Valid until the
 * next call. */
int wal_window_get(struct window *win, int fd, uint64_t seq, uint64_t off, size_t n, uint64_t limit,
                   const uint8_t **p);
void wal_window_forget(struct window *win);
void wal_window_shrink(struct window *win);

int wal_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int wal_fsync_fd(int fd, bool data_only);
/* The trailer that ends a sealed segment, pointing at its footer. */
void wal_trailer_encode(uint8_t *t, uint64_t footer_off, uint32_t footer_len);
bool wal_trailer_decode(const uint8_t *t, uint64_t *footer_off, uint32_t *footer_len);

/* The footer's payload, and the segment's share of the log it describes. */
struct footer {
    uint64_t seq;
    uint64_t base;
    uint64_t min_truncate;
    uint64_t last_index; /* the log's, when it was sealed */
    struct log_index slice;
    struct core_hard_state hs;
    struct core_checkpoint cp;
};
bool wal_footer_decode(const uint8_t *payload, size_t len, struct footer *f);

/* The snapshot file (wal_retain.c): index 0 and no data when there is none. */
struct snapshot {
    uint64_t index;
    uint64_t epoch;
    uint8_t *data; /* malloc'd */
    size_t len;
};
int wal_snapshot_load(struct wal *w, struct snapshot *snap, char *err, size_t errlen);

#endif
