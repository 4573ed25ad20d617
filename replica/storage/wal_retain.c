/*
 * replica/storage/wal_retain.c — what lets a log run for months: deleting
 * the oldest segments once a snapshot stands for their entries, and the
 * snapshot file itself.
 *
 * <dir>/snapshot is an opaque blob (the state machine's, not ours) with a
 * checksummed header:
 *      0  u32  magic      0x504e5352, the bytes "RSNP"
 *      4  u32  version    1
 *      8  u64  index      the last entry it stands for
 *     16  u64  epoch      that entry's epoch
 *     24  u64  len        bytes of data after the header
 *     32  u32  dcrc       CRC-32C of the data
 *     36  u32  hcrc       CRC-32C of header bytes 0..35
 * It is written as snapshot.tmp, fsync'd, renamed over the old one, and the
 * dir fsync'd: a crash leaves the old snapshot or the new one, whole (and
 * perhaps a snapshot.tmp, which wal_open deletes). A damaged snapshot is
 * refused at open like a damaged record: the segments it replaced are gone.
 *
 * Segments go oldest first and never the last one, whose header tells where
 * the log starts when it holds no entry; so what is left is always a run of
 * consecutive segments, even if a crash stops the deleting halfway.
 */
#include "storage/wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/crc32c.h"

#define SNAPSHOT_MAGIC  0x504e5352u
#define SNAPSHOT_HEADER 40

/* ------------------------------------------------------------------------
 * Old segments
 * ------------------------------------------------------------------------ */

/* Whether segment k may go: no live entry at or above index in it. */
static bool droppable(const struct wal *w, size_t k, uint64_t index)
{
    uint64_t lo, hi;

    return !ix_segment_live(&w->ix, w->segs[k].seq, &lo, &hi) || hi < index;
}

int wal_drop_before(struct wal *w, uint64_t index)
{
    char name[WAL_NAME_MAX];
    size_t k = 0, gone = 0;
    int rc = 0;

    while (k + 1 < w->n_segs && droppable(w, k, index))
        k++;
    for (; gone < k; gone++) {
        uint64_t seq = w->segs[gone].seq;

        if (w->rd_fd >= 0 && w->rd_seq == seq) {
            close(w->rd_fd);
            w->rd_fd = -1;
            w->rd_seq = UINT64_MAX;
        }
        wal_segment_name(name, seq, false);
        if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT) {
            rc = -errno;
            wal_set_err(w, "cannot delete %s/%s: %s", w->dir, name, strerror(errno));
            break;
        }
    }
    if (gone == 0)
        return rc;
    ix_forget_before(&w->ix, w->segs[gone].seq);
    memmove(w->segs, w->segs + gone, (w->n_segs - gone) * sizeof *w->segs);
    w->n_segs -= gone;
    wal_window_forget(&w->win);
    if (rc == 0 && (rc = wal_fsync_fd(w->dir_fd, false)) < 0)
        wal_set_err(w, "cannot sync directory %s: %s", w->dir, strerror(-rc));
    return rc;
}

/* The log is replaced by a snapshot installed from the primary: every
 * segment goes, newest first (a crash halfway leaves a consecutive run,
 * which wal_open then finds superseded by the snapshot and removes), and
 * the next entry is `next`. Records buffered and not yet written (a hard
 * state) stay buffered: they go into the next segment. */
int wal_reset(struct wal *w, uint64_t next)
{
    char name[WAL_NAME_MAX];
    int rc;

    if (w->broken)
        return -EIO;
    if (w->cur_fd >= 0) {
        close(w->cur_fd);
        w->cur_fd = -1;
    }
    if (w->rd_fd >= 0) {
        close(w->rd_fd);
        w->rd_fd = -1;
        w->rd_seq = UINT64_MAX;
    }
    while (w->n_segs > 0) {
        wal_segment_name(name, w->segs[w->n_segs - 1].seq, false);
        if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT) {
            rc = -errno;
            wal_set_err(w, "cannot delete %s/%s: %s", w->dir, name, strerror(errno));
            return rc;
        }
        w->n_segs--;
    }
    ix_free(&w->ix);
    ix_init(&w->ix, next);
    w->buf_last = next - 1;
    wal_window_forget(&w->win);
    /* Buffered log records (entries, truncations) belong to the log that
     * is gone: drop them, keep the hard states and checkpoints. */
    size_t kept = 0;
    for (size_t off = 0; off + REC_HEADER_SIZE <= w->buf_len;) {
        const uint8_t *h = w->buf + off;
        size_t len = REC_HEADER_SIZE + get_u32(h + 8);
        if (h[4] != REC_ENTRY && h[4] != REC_TRUNCATE) {
            memmove(w->buf + kept, h, len);
            kept += len;
        }
        off += len;
    }
    w->buf_len = kept;
    /* The hard state lived in the segments: it goes into the next one
     * (written by the sync that follows), before anything buffered. */
    size_t pending = w->buf_len;
    if ((rc = wal_append_state(w, &w->hs)) < 0)
        return rc;
    if (pending > 0) {
        size_t len = w->buf_len - pending;
        uint8_t *moved = malloc(len);
        if (!moved)
            return -ENOMEM;
        memcpy(moved, w->buf + pending, len);
        memmove(w->buf + len, w->buf, pending);
        memcpy(w->buf, moved, len);
        free(moved);
    }
    if ((rc = wal_fsync_fd(w->dir_fd, false)) < 0)
        wal_set_err(w, "cannot sync directory %s: %s", w->dir, strerror(-rc));
    return rc;
}

/* ------------------------------------------------------------------------
 * The snapshot file
 * ------------------------------------------------------------------------ */

static void snapshot_header(uint8_t *h, uint64_t index, uint64_t epoch, const void *data,
                            size_t len)
{
    uint8_t *p = h;

    p = put_u32(p, SNAPSHOT_MAGIC);
    p = put_u32(p, WAL_FORMAT_VERSION);
    p = put_u64(p, index);
    p = put_u64(p, epoch);
    p = put_u64(p, len);
    p = put_u32(p, crc32c(0, data, len));
    put_u32(p, crc32c(0, h, SNAPSHOT_HEADER - 4));
}

int wal_save_snapshot(struct wal *w, uint64_t index, uint64_t epoch, const void *data, size_t len)
{
    const char *tmp = WAL_SNAPSHOT_NAME WAL_TMP_SUFFIX;
    uint8_t h[SNAPSHOT_HEADER];
    int fd, rc;

    snapshot_header(h, index, epoch, data, len);
    fd = openat(w->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        wal_set_err(w, "cannot create %s/%s: %s", w->dir, tmp, strerror(errno));
        return rc;
    }
    rc = wal_pwrite_all(fd, h, sizeof h, 0);
    if (rc == 0 && len > 0)
        rc = wal_pwrite_all(fd, data, len, sizeof h);
    if (rc == 0)
        rc = wal_fsync_fd(fd, false);
    close(fd);
    if (rc == 0 && renameat(w->dir_fd, tmp, w->dir_fd, WAL_SNAPSHOT_NAME) != 0)
        rc = -errno;
    if (rc < 0) {
        wal_set_err(w, "cannot write %s/" WAL_SNAPSHOT_NAME ": %s", w->dir, strerror(-rc));
        unlinkat(w->dir_fd, tmp, 0);
        return rc;
    }
    rc = wal_fsync_fd(w->dir_fd, false);
    if (rc < 0)
        wal_set_err(w, "cannot sync directory %s: %s", w->dir, strerror(-rc));
    return rc;
}

static int read_all(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t k = pread(fd, buf + done, len - done, (off_t)(off + done));

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        done += (size_t)k;
    }
    return 0;
}

static int snapshot_damaged(struct wal *w, const char *why, char *err, size_t errlen)
{
    wal_errf(err, errlen, "%s/" WAL_SNAPSHOT_NAME ": %s; refusing to start. " WAL_ADVICE, w->dir,
             why);
    return -EILSEQ;
}

int wal_snapshot_load(struct wal *w, struct snapshot *snap, char *err, size_t errlen)
{
    uint8_t h[SNAPSHOT_HEADER];
    struct stat st;
    uint64_t len;
    int fd, rc;

    memset(snap, 0, sizeof *snap);
    fd = openat(w->dir_fd, WAL_SNAPSHOT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        wal_errf(err, errlen, "cannot open %s/" WAL_SNAPSHOT_NAME ": %s", w->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size < SNAPSHOT_HEADER) {
        rc = snapshot_damaged(w, "shorter than its header", err, errlen);
        goto out;
    }
    if ((rc = read_all(fd, h, sizeof h, 0)) < 0) {
        wal_errf(err, errlen, "cannot read %s/" WAL_SNAPSHOT_NAME ": %s", w->dir, strerror(-rc));
        goto out;
    }
    len = get_u64(h + 24);
    if (get_u32(h) != SNAPSHOT_MAGIC || get_u32(h + 36) != crc32c(0, h, SNAPSHOT_HEADER - 4) ||
        get_u32(h + 4) != WAL_FORMAT_VERSION) {
        rc = snapshot_damaged(w, "damaged header", err, errlen);
        goto out;
    }
    if (len != (uint64_t)st.st_size - SNAPSHOT_HEADER) {
        rc = snapshot_damaged(w, "length differs from the file's", err, errlen);
        goto out;
    }
    snap->data = malloc(len ? len : 1);
    if (!snap->data) {
        rc = -ENOMEM;
        wal_errf(err, errlen, "out of memory reading %s/" WAL_SNAPSHOT_NAME, w->dir);
        goto out;
    }
    if ((rc = read_all(fd, snap->data, len, SNAPSHOT_HEADER)) < 0)
        wal_errf(err, errlen, "cannot read %s/" WAL_SNAPSHOT_NAME ": %s", w->dir, strerror(-rc));
    else if (get_u32(h + 32) != crc32c(0, snap->data, len))
        rc = snapshot_damaged(w, "data checksum mismatch", err, errlen);
    if (rc < 0) {
        free(snap->data);
        snap->data = NULL;
        goto out;
    }
    snap->index = get_u64(h + 8);
    snap->epoch = get_u64(h + 16);
    snap->len = len;
out:
    close(fd);
    return rc;
}
