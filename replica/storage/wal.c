/*
 * replica/storage/wal.c — the write-ahead log file of one replica: its record
 * format, replay with torn-tail recovery, buffered appends and group commit.
 *
 * The file is <dir>/wal.log, a sequence of records. Every integer is
 * little-endian and encoded byte by byte, so the format does not depend on
 * the compiler's struct layout or the host's byte order.
 *
 *   header, 20 bytes
 *      0  u32  magic      0x4c415752, the bytes "RWAL"
 *      4  u8   type       1 STATE, 2 ENTRY, 3 TRUNCATE
 *      5  u8x3 reserved   zero
 *      8  u32  len        payload bytes, at most WAL_MAX_PAYLOAD
 *     12  u32  pcrc       CRC-32C of the payload
 *     16  u32  hcrc       CRC-32C of header bytes 0..15
 *   payload, len bytes
 *     STATE     u64 epoch, str voted_for, u32 n_bootstrap, n_bootstrap x str
 *     ENTRY     u64 index, u64 epoch, u8 type, u64 time_ms (two's complement),
 *               str client_id, str primary, str data
 *     TRUNCATE  u64 from: entries with index >= from are dropped
 *   str = u32 length, then that many bytes (no NUL)
 *
 * The header has its own checksum so that a damaged length is detected
 * rather than trusted: a flipped length bit would otherwise make replay skip
 * or swallow the records that follow.
 *
 * Recovery draws one line. A record cut short by the end of the file, or a
 * damaged record with only zero bytes (or nothing) after it, is what a crash
 * in the middle of a write leaves: it was never synced, so nobody was told
 * about it, and the file is truncated before it. A damaged record with more
 * data after it cannot come from a torn write; dropping it would silently lose
 * entries that may have been acknowledged, so wal_open refuses to start. When
 * the header itself is damaged the record's end is unknown, so everything
 * after the header must be zero for it to count as torn.
 */
#include "storage/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "storage/crc32c.h"

#define WAL_FILE_NAME   "wal.log"
#define WAL_MAGIC       0x4c415752u
#define WAL_HEADER_SIZE 20
/* Far above any record we write (requests are capped at a few MiB), low
 * enough that a bogus length can never make us allocate gigabytes. */
#define WAL_MAX_PAYLOAD (64u * 1024 * 1024)
/* After a sync, a buffer grown beyond this by a burst is given back. */
#define WAL_KEEP_BUFFER (1u * 1024 * 1024)

#define ADVICE "Move the data dir aside to resync this replica from its peers."

enum wal_record_type {
    WAL_STATE = 1,
    WAL_ENTRY = 2,
    WAL_TRUNCATE = 3,
};

struct wal {
    int fd;
    char *path;          /* <dir>/wal.log, for messages */
    uint64_t size;       /* bytes in the file: the end of the last synced record */
    uint64_t last_index; /* last entry's index, counting buffered appends */
    uint8_t *buf;        /* encoded records not yet written */
    size_t buf_len;
    size_t buf_cap;
    uint64_t fsync_ns; /* how long the last fdatasync took */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static uint8_t *put_u8(uint8_t *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    p = put_u32(p, (uint32_t)v);
    return put_u32(p, (uint32_t)(v >> 32));
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t len)
{
    p = put_u32(p, (uint32_t)len);
    if (len > 0)
        memcpy(p, s, len);
    return p + len;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Room for one record with len payload bytes at the end of the buffer.
 * Returns where the payload goes, or NULL when memory runs out. */
static uint8_t *record_reserve(struct wal *w, size_t len)
{
    size_t need = w->buf_len + WAL_HEADER_SIZE + len;

    if (need > w->buf_cap) {
        size_t cap = w->buf_cap ? w->buf_cap : 4096;
        uint8_t *buf;

        while (cap < need)
            cap *= 2;
        buf = realloc(w->buf, cap);
        if (!buf)
            return NULL;
        w->buf = buf;
        w->buf_cap = cap;
    }
    return w->buf + w->buf_len + WAL_HEADER_SIZE;
}

/* Seal the record whose payload record_reserve placed: fill its header. */
static void record_finish(struct wal *w, enum wal_record_type type, size_t len)
{
    uint8_t *h = w->buf + w->buf_len;
    uint8_t *p = h;

    p = put_u32(p, WAL_MAGIC);
    p = put_u8(p, (uint8_t)type);
    p = put_u8(p, 0);
    p = put_u8(p, 0);
    p = put_u8(p, 0);
    p = put_u32(p, (uint32_t)len);
    p = put_u32(p, crc32c(0, h + WAL_HEADER_SIZE, len));
    put_u32(p, crc32c(0, h, WAL_HEADER_SIZE - 4));
    w->buf_len += WAL_HEADER_SIZE + len;
}

static size_t entry_payload_len(const struct core_entry *e, size_t clen, size_t plen)
{
    return 8 + 8 + 1 + 8 + 4 + clen + 4 + plen + 4 + e->len;
}

static int put_entry(struct wal *w, const struct core_entry *e)
{
    const char *client = e->client_id ? e->client_id : "";
    const char *primary = e->primary ? e->primary : "";
    size_t clen = strlen(client), plen = strlen(primary);
    size_t len = entry_payload_len(e, clen, plen);
    uint8_t *p = record_reserve(w, len);

    if (!p)
        return -ENOMEM;
    p = put_u64(p, e->index);
    p = put_u64(p, e->epoch);
    p = put_u8(p, (uint8_t)e->type);
    p = put_u64(p, (uint64_t)e->time_ms);
    p = put_str(p, client, clen);
    p = put_str(p, primary, plen);
    put_str(p, e->data, e->len);
    record_finish(w, WAL_ENTRY, len);
    return 0;
}

static int put_truncate(struct wal *w, uint64_t from)
{
    uint8_t *p = record_reserve(w, 8);

    if (!p)
        return -ENOMEM;
    put_u64(p, from);
    record_finish(w, WAL_TRUNCATE, 8);
    return 0;
}

int wal_append_state(struct wal *w, const struct core_hard_state *hs)
{
    size_t vlen = strnlen(hs->voted_for, CORE_ID_MAX);
    size_t len = 8 + 4 + vlen + 4;
    uint8_t *p;

    /* Refuse what replay would reject rather than write an unreadable log. */
    if (vlen == CORE_ID_MAX || hs->n_bootstrap > CORE_MAX_MEMBERS)
        return -EINVAL;
    for (unsigned i = 0; i < hs->n_bootstrap; i++) {
        size_t blen = strnlen(hs->bootstrap[i], CORE_ID_MAX);

        if (blen == CORE_ID_MAX)
            return -EINVAL;
        len += 4 + blen;
    }
    p = record_reserve(w, len);
    if (!p)
        return -ENOMEM;
    p = put_u64(p, hs->epoch);
    p = put_str(p, hs->voted_for, vlen);
    p = put_u32(p, hs->n_bootstrap);
    for (unsigned i = 0; i < hs->n_bootstrap; i++)
        p = put_str(p, hs->bootstrap[i], strlen(hs->bootstrap[i]));
    record_finish(w, WAL_STATE, len);
    return 0;
}

int wal_append_entries(struct wal *w, uint64_t truncate_from, const struct core_entry *e, size_t n)
{
    uint64_t last = w->last_index;
    size_t mark = w->buf_len;
    bool truncate = truncate_from > 0 && truncate_from <= last;
    int rc;

    if (truncate)
        last = truncate_from - 1;
    /* Check the whole batch first: replay treats a gap in the indices or an
     * oversized record as corruption, so such a batch must never reach disk,
     * and a half-buffered batch would be worse than none. */
    for (size_t i = 0; i < n; i++) {
        const char *client = e[i].client_id ? e[i].client_id : "";
        const char *primary = e[i].primary ? e[i].primary : "";

        if (e[i].index != last + 1 + i || (unsigned)e[i].type > CORE_ENTRY_CONFIG)
            return -EINVAL;
        if (e[i].len > WAL_MAX_PAYLOAD ||
            entry_payload_len(&e[i], strlen(client), strlen(primary)) > WAL_MAX_PAYLOAD)
            return -EMSGSIZE;
    }
    if (truncate && (rc = put_truncate(w, truncate_from)) < 0)
        goto err_rollback;
    for (size_t i = 0; i < n; i++)
        if ((rc = put_entry(w, &e[i])) < 0)
            goto err_rollback;
    w->last_index = last + n;
    return 0;

err_rollback:
    w->buf_len = mark;
    return rc;
}

/* ------------------------------------------------------------------------
 * Sync
 * ------------------------------------------------------------------------ */

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int wal_sync(struct wal *w)
{
    size_t done = 0;
    uint64_t start;

    w->fsync_ns = 0;
    if (w->buf_len == 0)
        return 0;
    /* pwrite at the end of what is known good, not write at the file
     * position: after a failed or partial attempt the buffer is kept, and a
     * retry then rewrites the same bytes instead of appending a second copy
     * behind a half-written one. */
    while (done < w->buf_len) {
        ssize_t k = pwrite(w->fd, w->buf + done, w->buf_len - done, (off_t)(w->size + done));

        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            return -EIO;
        done += (size_t)k;
    }
    /* fdatasync also persists the file size, which appending changes. A
     * failure here leaves the page cache in an unknown state (the kernel may
     * already have dropped the dirty pages), so callers treat it as fatal. */
    start = mono_ns();
    while (fdatasync(w->fd) != 0)
        if (errno != EINTR)
            return -errno;
    w->fsync_ns = mono_ns() - start;
    if (w->fsync_ns == 0)
        w->fsync_ns = 1; /* it did happen */
    w->size += w->buf_len;
    w->buf_len = 0;
    if (w->buf_cap > WAL_KEEP_BUFFER) {
        free(w->buf);
        w->buf = NULL;
        w->buf_cap = 0;
    }
    return 0;
}

uint64_t wal_last_fsync_ns(const struct wal *w)
{
    return w->fsync_ns;
}

int wal_pending(const struct wal *w)
{
    return w->buf_len > 0;
}

uint64_t wal_size(const struct wal *w)
{
    return w->size;
}

/* Crash-like on purpose: buffered records are dropped, not synced. Whoever
 * wants them durable calls wal_sync first and handles its error. */
void wal_close(struct wal *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    free(w->buf);
    free(w);
}

/* ------------------------------------------------------------------------
 * Replay
 * ------------------------------------------------------------------------ */

/* Reads a payload; any read past the end clears ok instead of crashing. */
struct cursor {
    const uint8_t *p;
    size_t left;
    bool ok;
};

static const uint8_t *take(struct cursor *c, size_t n)
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

static uint8_t take_u8(struct cursor *c)
{
    const uint8_t *p = take(c, 1);
    return p ? *p : 0;
}

static uint32_t take_u32(struct cursor *c)
{
    const uint8_t *p = take(c, 4);
    return p ? get_u32(p) : 0;
}

static uint64_t take_u64(struct cursor *c)
{
    const uint8_t *p = take(c, 8);
    return p ? get_u64(p) : 0;
}

static const uint8_t *take_str(struct cursor *c, uint32_t *len)
{
    *len = take_u32(c);
    return take(c, *len);
}

/* An entry as it lies in the file buffer, before it is copied out. */
struct entry_view {
    uint64_t index;
    uint64_t epoch;
    int64_t time_ms;
    uint8_t type;
    uint32_t clen, plen, dlen;
    const uint8_t *client, *primary, *data;
};

struct replay {
    const char *path;
    const uint8_t *file;
    uint64_t size;
    struct core_hard_state hs;
    struct entry_view *v; /* v[i] has index i + 1 */
    size_t n;
    size_t cap;
    char *err;
    size_t errlen;
};

static int refuse_invalid(struct replay *r, uint64_t off, const char *why)
{
    set_err(r->err, r->errlen, "%s: invalid record at offset %llu (%s); refusing to start. " ADVICE,
            r->path, (unsigned long long)off, why);
    return -EILSEQ;
}

static int apply_state(struct replay *r, uint64_t off, struct cursor *c)
{
    struct core_hard_state hs;
    const uint8_t *s;
    uint32_t len;
    char why[96];

    memset(&hs, 0, sizeof hs);
    hs.epoch = take_u64(c);
    s = take_str(c, &len);
    if (s && len < CORE_ID_MAX)
        memcpy(hs.voted_for, s, len);
    else
        c->ok = false;
    hs.n_bootstrap = take_u32(c);
    if (hs.n_bootstrap > CORE_MAX_MEMBERS)
        c->ok = false;
    for (unsigned i = 0; c->ok && i < hs.n_bootstrap; i++) {
        s = take_str(c, &len);
        if (s && len < CORE_ID_MAX)
            memcpy(hs.bootstrap[i], s, len);
        else
            c->ok = false;
    }
    if (!c->ok || c->left != 0)
        return refuse_invalid(r, off, "malformed state record");
    /* A replica never goes back to an earlier epoch. */
    if (hs.epoch < r->hs.epoch) {
        snprintf(why, sizeof why, "state of epoch %llu after epoch %llu",
                 (unsigned long long)hs.epoch, (unsigned long long)r->hs.epoch);
        return refuse_invalid(r, off, why);
    }
    r->hs = hs;
    return 0;
}

static int apply_truncate(struct replay *r, uint64_t off, struct cursor *c)
{
    uint64_t from = take_u64(c);

    if (!c->ok || c->left != 0 || from == 0)
        return refuse_invalid(r, off, "malformed truncate record");
    if (from <= r->n)
        r->n = (size_t)(from - 1);
    return 0;
}

static int apply_entry(struct replay *r, uint64_t off, struct cursor *c)
{
    struct entry_view v;
    char why[96];

    v.index = take_u64(c);
    v.epoch = take_u64(c);
    v.type = take_u8(c);
    v.time_ms = (int64_t)take_u64(c);
    v.client = take_str(c, &v.clen);
    v.primary = take_str(c, &v.plen);
    v.data = take_str(c, &v.dlen);
    if (!c->ok || c->left != 0 || v.type > CORE_ENTRY_CONFIG)
        return refuse_invalid(r, off, "malformed entry record");
    /* The log must be contiguous from 1: a gap means records were lost or
     * reordered, which no crash can cause. */
    if (v.index != (uint64_t)r->n + 1) {
        snprintf(why, sizeof why, "entry index %llu where %llu was expected",
                 (unsigned long long)v.index, (unsigned long long)r->n + 1);
        return refuse_invalid(r, off, why);
    }
    /* Epochs never go down along a log. */
    uint64_t before = r->n > 0 ? r->v[r->n - 1].epoch : 0;
    if (v.epoch < before) {
        snprintf(why, sizeof why, "entry %llu of epoch %llu after epoch %llu",
                 (unsigned long long)v.index, (unsigned long long)v.epoch,
                 (unsigned long long)before);
        return refuse_invalid(r, off, why);
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        struct entry_view *nv = realloc(r->v, cap * sizeof *nv);

        if (!nv) {
            set_err(r->err, r->errlen, "%s: out of memory during replay", r->path);
            return -ENOMEM;
        }
        r->v = nv;
        r->cap = cap;
    }
    r->v[r->n++] = v;
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* A damaged record at off whose bytes end at `end` (just its header when the
 * length cannot be trusted). Returns 1 when it is a torn tail, or refuses. */
static int damaged(struct replay *r, uint64_t off, uint64_t end, const char *why)
{
    if (end >= r->size || all_zero(r->file + end, (size_t)(r->size - end)))
        return 1;
    set_err(r->err, r->errlen,
            "%s: corrupted record at offset %llu (%s) followed by %llu more bytes; refusing to "
            "start. " ADVICE,
            r->path, (unsigned long long)off, why, (unsigned long long)(r->size - end));
    return -EILSEQ;
}

/* One record at off. Returns 0 and where the next record starts in *next,
 * 1 when the file ends in a torn record at off, or a negative code. */
static int replay_record(struct replay *r, uint64_t off, uint64_t *next)
{
    const uint8_t *h = r->file + off;
    uint64_t left = r->size - off;
    uint32_t len;
    struct cursor c;
    char why[64];

    if (left < WAL_HEADER_SIZE)
        return 1;
    if (get_u32(h) != WAL_MAGIC)
        return damaged(r, off, off + WAL_HEADER_SIZE, "bad magic");
    if (get_u32(h + 16) != crc32c(0, h, WAL_HEADER_SIZE - 4))
        return damaged(r, off, off + WAL_HEADER_SIZE, "header checksum mismatch");
    len = get_u32(h + 8);
    if (len > WAL_MAX_PAYLOAD) {
        snprintf(why, sizeof why, "payload length %u over the limit", len);
        return damaged(r, off, off + WAL_HEADER_SIZE, why);
    }
    if (left - WAL_HEADER_SIZE < len)
        return 1;
    if (get_u32(h + 12) != crc32c(0, h + WAL_HEADER_SIZE, len))
        return damaged(r, off, off + WAL_HEADER_SIZE + len, "payload checksum mismatch");
    if (h[5] || h[6] || h[7])
        return refuse_invalid(r, off, "reserved header bytes set");

    *next = off + WAL_HEADER_SIZE + len;
    c = (struct cursor){.p = h + WAL_HEADER_SIZE, .left = len, .ok = true};
    switch (h[4]) {
    case WAL_STATE:
        return apply_state(r, off, &c);
    case WAL_ENTRY:
        return apply_entry(r, off, &c);
    case WAL_TRUNCATE:
        return apply_truncate(r, off, &c);
    default:
        snprintf(why, sizeof why, "unknown record type %u", h[4]);
        return refuse_invalid(r, off, why);
    }
}

/* Replays the whole file. Returns 0 and where the good records end in *end
 * (short of r->size when a torn tail must go), or a negative code. */
static int replay_all(struct replay *r, uint64_t *end)
{
    uint64_t off = 0;

    while (off < r->size) {
        uint64_t next = off;
        int rc = replay_record(r, off, &next);

        if (rc < 0)
            return rc;
        if (rc == 1)
            break;
        off = next;
    }
    *end = off;
    return 0;
}

/* Copies the surviving entries into one block owned by rec: the entry array
 * first, then each entry's data, client id and primary (NUL-terminated). One
 * allocation keeps wal_recovered_free trivial and leak-proof. */
static int build_recovered(const struct replay *r, struct wal_recovered *rec)
{
    size_t head = r->n * sizeof(struct core_entry);
    size_t arena = 0;
    uint8_t *block, *p;

    rec->hs = r->hs;
    if (r->n == 0)
        return 0;
    for (size_t i = 0; i < r->n; i++)
        arena += (size_t)r->v[i].dlen + r->v[i].clen + 1 + r->v[i].plen + 1;
    block = malloc(head + arena);
    if (!block)
        return -ENOMEM;
    rec->entries = (struct core_entry *)block;
    p = block + head;
    for (size_t i = 0; i < r->n; i++) {
        const struct entry_view *v = &r->v[i];
        struct core_entry *e = &rec->entries[i];

        e->index = v->index;
        e->epoch = v->epoch;
        e->type = (enum core_entry_type)v->type;
        e->time_ms = v->time_ms;
        /* Never NULL, even when empty: callers may memcpy from it. */
        e->data = p;
        e->len = v->dlen;
        memcpy(p, v->data, v->dlen);
        p += v->dlen;
        e->client_id = (const char *)p;
        memcpy(p, v->client, v->clen);
        p[v->clen] = '\0';
        p += v->clen + 1;
        e->primary = (const char *)p;
        memcpy(p, v->primary, v->plen);
        p[v->plen] = '\0';
        p += v->plen + 1;
    }
    rec->n_entries = r->n;
    rec->storage = block;
    return 0;
}

void wal_recovered_free(struct wal_recovered *rec)
{
    if (!rec)
        return;
    free(rec->storage);
    memset(rec, 0, sizeof *rec);
}

/* ------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------ */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    while (fsync(fd) != 0) {
        if (errno != EINTR) {
            rc = -errno;
            break;
        }
    }
    close(fd);
    return rc;
}

/* Makes dir exist. A directory we create is only durable once its parent's
 * entry for it is synced. */
static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    char *parent, *slash;
    int rc;

    if (mkdir(dir, 0755) != 0) {
        if (errno == EEXIST)
            return 0;
        rc = -errno;
        set_err(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        return rc;
    }
    parent = strdup(dir);
    if (!parent) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    slash = parent + strlen(parent);
    while (slash > parent + 1 && slash[-1] == '/')
        *--slash = '\0';
    slash = strrchr(parent, '/');
    if (!slash)
        strcpy(parent, ".");
    else if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    rc = fsync_dir(parent);
    if (rc < 0)
        set_err(err, errlen, "cannot sync directory %s: %s", parent, strerror(-rc));
    free(parent);
    return rc;
}

/* Opens the file, creating it (and making its name durable) if needed, and
 * takes an exclusive lock: two replicas sharing one data dir would interleave
 * records and destroy each other's log. */
static int open_file(struct wal *w, const char *dir, char *err, size_t errlen)
{
    int rc;

    w->fd = open(w->path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0 && errno == ENOENT) {
        w->fd = open(w->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd >= 0 && (rc = fsync_dir(dir)) < 0) {
            set_err(err, errlen, "cannot sync directory %s: %s", dir, strerror(-rc));
            return rc;
        }
    }
    if (w->fd < 0) {
        rc = -errno;
        set_err(err, errlen, "cannot open %s: %s", w->path, strerror(errno));
        return rc;
    }
    if (flock(w->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        set_err(err, errlen, "%s is locked by another process (%s)", w->path,
                errno == EWOULDBLOCK ? "is another replica using this data dir?" : strerror(errno));
        return rc;
    }
    return 0;
}

static int read_file(struct wal *w, uint8_t **out, uint64_t *size, char *err, size_t errlen)
{
    struct stat st;
    uint8_t *buf;
    size_t n, done = 0;
    int rc;

    if (fstat(w->fd, &st) != 0) {
        rc = -errno;
        set_err(err, errlen, "cannot stat %s: %s", w->path, strerror(errno));
        return rc;
    }
    n = (size_t)st.st_size;
    buf = malloc(n ? n : 1);
    if (!buf) {
        set_err(err, errlen, "%s: cannot allocate %zu bytes to replay it", w->path, n);
        return -ENOMEM;
    }
    while (done < n) {
        ssize_t k = pread(w->fd, buf + done, n - done, (off_t)done);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -errno : -EIO;
            set_err(err, errlen, "cannot read %s: %s", w->path,
                    k < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            return rc;
        }
        done += (size_t)k;
    }
    *out = buf;
    *size = n;
    return 0;
}

/* Cuts a torn tail off. Synced before we go on, so that records appended
 * later can never end up behind the remains of the torn one. */
static int truncate_tail(struct wal *w, uint64_t end, char *err, size_t errlen)
{
    int rc;

    if (ftruncate(w->fd, (off_t)end) != 0) {
        rc = -errno;
        set_err(err, errlen, "cannot truncate torn tail of %s at %llu: %s", w->path,
                (unsigned long long)end, strerror(errno));
        return rc;
    }
    while (fsync(w->fd) != 0) {
        if (errno != EINTR) {
            rc = -errno;
            set_err(err, errlen, "cannot sync %s: %s", w->path, strerror(errno));
            return rc;
        }
    }
    return 0;
}

int wal_open(const char *dir, struct wal **out, struct wal_recovered *rec, char *err, size_t errlen)
{
    struct replay r;
    struct wal *w;
    uint8_t *file = NULL;
    uint64_t end = 0;
    size_t pathlen;
    int rc;

    *out = NULL;
    memset(rec, 0, sizeof *rec);
    set_err(err, errlen, "%s", "");
    memset(&r, 0, sizeof r);

    w = calloc(1, sizeof *w);
    if (!w) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    w->fd = -1;
    rc = ensure_dir(dir, err, errlen);
    if (rc < 0)
        goto err_after_wal_alloc;
    pathlen = strlen(dir) + sizeof("/" WAL_FILE_NAME);
    w->path = malloc(pathlen);
    if (!w->path) {
        set_err(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto err_after_wal_alloc;
    }
    snprintf(w->path, pathlen, "%s/%s", dir, WAL_FILE_NAME);
    rc = open_file(w, dir, err, errlen);
    if (rc < 0)
        goto err_after_wal_alloc;
    rc = read_file(w, &file, &r.size, err, errlen);
    if (rc < 0)
        goto err_after_wal_alloc;

    r.path = w->path;
    r.file = file;
    r.err = err;
    r.errlen = errlen;
    rc = replay_all(&r, &end);
    if (rc < 0)
        goto err_after_read;
    if (end < r.size && (rc = truncate_tail(w, end, err, errlen)) < 0)
        goto err_after_read;
    rc = build_recovered(&r, rec);
    if (rc < 0) {
        set_err(err, errlen, "%s: out of memory copying %zu entries", w->path, r.n);
        goto err_after_read;
    }
    w->size = end;
    w->last_index = r.n;
    free(r.v);
    free(file);
    *out = w;
    return 0;

err_after_read:
    free(r.v);
    free(file);
    memset(rec, 0, sizeof *rec);
err_after_wal_alloc:
    wal_close(w);
    return rc;
}
