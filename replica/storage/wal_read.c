/*
 * replica/storage/wal_read.c — reading entries back by index: the window
 * through which segment files are read (pread in chunks, never mmap), and
 * wal_read, which seeks to the nearest sparse index point and walks records
 * from there (logindex.h says why that finds exactly the live entries, also
 * across truncations).
 *
 * What a read returns is copied into two buffers owned by the WAL (the
 * entry array and an arena for strings and data) and lent until the next
 * read; buffers a large read grew are given back at the next one.
 */
#include "storage/wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An entry's fields up to its client id's length. */
#define WAL_META_PREFIX (8 + 8 + 1 + 8 + 4)

/* ------------------------------------------------------------------------
 * The window
 * ------------------------------------------------------------------------ */

int wal_window_get(struct window *win, int fd, uint64_t seq, uint64_t off, size_t n, uint64_t limit,
                   const uint8_t **p)
{
    size_t want, done = 0;

    if (off > limit || n > limit - off)
        return 1;
    if (win->seq == seq && off >= win->off && off + n <= win->off + win->len) {
        *p = win->buf + (off - win->off);
        return 0;
    }
    /* Read ahead a lot only when reading on from where the window ends:
     * a catch-up streams, a seek for one entry should not cost 256 KiB. */
    want = win->seq == seq && off >= win->off && off <= win->off + win->len ? WAL_READ_CHUNK
                                                                            : WAL_READ_SEEK;
    if (want < n)
        want = n;
    if (want > limit - off)
        want = (size_t)(limit - off);
    if (want > win->cap) {
        uint8_t *buf = realloc(win->buf, want);

        if (!buf)
            return -ENOMEM;
        win->buf = buf;
        win->cap = want;
    }
    win->seq = UINT64_MAX;
    while (done < want) {
        ssize_t k = pread(fd, win->buf + done, want - done, (off_t)(off + done));

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO; /* shorter than it was */
        done += (size_t)k;
    }
    win->seq = seq;
    win->off = off;
    win->len = want;
    *p = win->buf;
    return 0;
}

void wal_window_forget(struct window *win)
{
    win->seq = UINT64_MAX;
    win->len = 0;
}

void wal_window_shrink(struct window *win)
{
    if (win->cap <= WAL_KEEP_READ)
        return;
    free(win->buf);
    win->buf = NULL;
    win->cap = 0;
    wal_window_forget(win);
}

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */

/* An fd to read segment seq: the open one's, or a closed one opened once. */
static int segment_fd(struct wal *w, uint64_t seq, int *fd)
{
    char name[WAL_NAME_MAX];
    int rc;

    if (w->cur_fd >= 0 && seq == w->segs[w->n_segs - 1].seq) {
        *fd = w->cur_fd;
        return 0;
    }
    if (w->rd_fd >= 0 && w->rd_seq == seq) {
        *fd = w->rd_fd;
        return 0;
    }
    if (w->rd_fd >= 0)
        close(w->rd_fd);
    w->rd_fd = -1;
    wal_segment_name(name, seq, false);
    *fd = openat(w->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        rc = -errno;
        wal_set_err(w, "cannot open %s/%s: %s", w->dir, name, strerror(errno));
        return rc;
    }
    w->rd_fd = *fd;
    w->rd_seq = seq;
    return 0;
}

static int damaged(struct wal *w, uint64_t seq, uint64_t off, const char *why)
{
    char name[WAL_NAME_MAX];

    wal_segment_name(name, seq, false);
    wal_set_err(w, "%s/%s: damaged record at offset %llu (%s). " WAL_ADVICE, w->dir, name,
                (unsigned long long)off, why);
    return -EILSEQ;
}

static int io_failed(struct wal *w, uint64_t seq, uint64_t off, int rc)
{
    char name[WAL_NAME_MAX];

    wal_segment_name(name, seq, false);
    wal_set_err(w, "cannot read %s/%s at offset %llu: %s", w->dir, name, (unsigned long long)off,
                strerror(-rc));
    return rc;
}

/* Where one read is, as it walks the records of one segment. */
struct walk {
    const struct segment *seg;
    int fd;
    uint64_t off;
    const uint8_t *h; /* the record at off, header checked */
    uint8_t type;
    uint32_t len;
};

/* Checks the header of the record at walk->off and brings its first `want`
 * payload bytes into the window. */
static int walk_record(struct wal *w, struct walk *k, size_t want)
{
    const char *why;
    int rc =
        wal_window_get(&w->win, k->fd, k->seg->seq, k->off, REC_HEADER_SIZE, k->seg->end, &k->h);

    if (rc == 1)
        return damaged(w, k->seg->seq, k->off, "expected an entry, found the segment's end");
    if (rc < 0)
        return io_failed(w, k->seg->seq, k->off, rc);
    why = rec_check_header(k->h, &k->type, &k->len);
    if (why)
        return damaged(w, k->seg->seq, k->off, why);
    if (k->len > k->seg->end - k->off - REC_HEADER_SIZE)
        return damaged(w, k->seg->seq, k->off, "record runs past the segment's end");
    if (want > k->len)
        want = k->len;
    rc = wal_window_get(&w->win, k->fd, k->seg->seq, k->off, REC_HEADER_SIZE + want, k->seg->end,
                        &k->h);
    return rc < 0 ? io_failed(w, k->seg->seq, k->off, rc) : 0;
}

/* The entry's fields without its data: header checked, not the payload. */
static int walk_meta(struct wal *w, struct walk *k, struct entry_view *v)
{
    size_t want = WAL_META_PREFIX, need;
    int rc;

    for (;;) {
        size_t avail = want < k->len ? want : k->len;

        if (rec_take_entry_meta(k->h + REC_HEADER_SIZE, avail, k->len, v, &need) > 0)
            return 0;
        if (need == 0)
            return damaged(w, k->seg->seq, k->off, "malformed entry record");
        want = need;
        if ((rc = walk_record(w, k, want)) < 0)
            return rc;
    }
}

static int walk_full(struct wal *w, struct walk *k, struct entry_view *v)
{
    const char *why = rec_check_payload(k->h);
    struct cursor c = cursor_of(k->h + REC_HEADER_SIZE, k->len);

    if (why)
        return damaged(w, k->seg->seq, k->off, why);
    if (!rec_take_entry(&c, v))
        return damaged(w, k->seg->seq, k->off, "malformed entry record");
    return 0;
}

/* ------------------------------------------------------------------------
 * Lending
 * ------------------------------------------------------------------------ */

struct lent {
    size_t n;
    size_t arena_len;
    size_t bytes; /* counted against max_bytes */
};

static int reserve(void **buf, size_t *cap, size_t need)
{
    size_t ncap = *cap ? *cap : 4096;
    void *p;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    p = realloc(*buf, ncap);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = ncap;
    return 0;
}

/* Copies an entry out. Its strings and data are recorded as offsets into
 * the arena, which may still move; lend_finish turns them into pointers. */
static int lend(struct wal *w, struct lent *l, const struct entry_view *v, bool meta_only)
{
    size_t data = meta_only ? 0 : v->dlen;
    size_t need = l->arena_len + data + v->clen + 1 + v->plen + 1;
    size_t out_bytes = w->out_cap * sizeof *w->out;
    struct core_entry *e;
    uint8_t *p;

    if (reserve((void **)&w->out, &out_bytes, (l->n + 1) * sizeof *w->out) < 0 ||
        reserve((void **)&w->arena, &w->arena_cap, need) < 0)
        return -ENOMEM;
    w->out_cap = out_bytes / sizeof *w->out;
    e = &w->out[l->n++];
    e->index = v->index;
    e->epoch = v->epoch;
    e->type = (enum core_entry_type)v->type;
    e->time_ms = v->time_ms;
    e->len = v->dlen;
    p = w->arena + l->arena_len;
    e->data = meta_only ? NULL : (const uint8_t *)(uintptr_t)l->arena_len;
    if (data > 0)
        memcpy(p, v->data, data);
    p += data;
    e->client_id = (const char *)(uintptr_t)(p - w->arena);
    memcpy(p, v->client, v->clen);
    p[v->clen] = '\0';
    p += v->clen + 1;
    e->primary = (const char *)(uintptr_t)(p - w->arena);
    memcpy(p, v->primary, v->plen);
    p[v->plen] = '\0';
    l->arena_len = need;
    return 0;
}

static void lend_finish(struct wal *w, const struct lent *l, bool meta_only)
{
    for (size_t i = 0; i < l->n; i++) {
        struct core_entry *e = &w->out[i];

        if (!meta_only)
            e->data = w->arena + (uintptr_t)e->data;
        e->client_id = (const char *)w->arena + (uintptr_t)e->client_id;
        e->primary = (const char *)w->arena + (uintptr_t)e->primary;
    }
}

/* Buffers a large read grew are given back before the next one. */
static void shrink_read_buffers(struct wal *w)
{
    if (w->out_cap * sizeof *w->out > WAL_KEEP_READ) {
        free(w->out);
        w->out = NULL;
        w->out_cap = 0;
    }
    if (w->arena_cap > WAL_KEEP_READ) {
        free(w->arena);
        w->arena = NULL;
        w->arena_cap = 0;
    }
    wal_window_shrink(&w->win);
}

/* ------------------------------------------------------------------------
 * wal_read
 * ------------------------------------------------------------------------ */

/* Where a read is in the index's runs and config indexes. */
struct agree {
    size_t run;
    size_t config;
};

/* An entry must be what the index says: its epoch the run's, CONFIG
 * exactly where a config index is. Records and a sealed segment's footer
 * each have their checksum, so only a bug (or a forged file) makes them
 * disagree; the core trusts both, so a read refuses rather than lend it. */
static int check_agrees(struct wal *w, struct agree *a, const struct walk *k,
                        const struct entry_view *v)
{
    const struct log_index *ix = &w->ix;
    bool config;
    char why[128];

    while (a->run + 1 < ix->n_runs && ix->runs[a->run + 1].first_index <= v->index)
        a->run++;
    config = a->config < ix->n_configs && ix->configs[a->config] == v->index;
    a->config += config;
    if (v->epoch == ix->runs[a->run].epoch && config == (v->type == CORE_ENTRY_CONFIG))
        return 0;
    snprintf(why, sizeof why, "entry %llu of epoch %llu%s, where the index says epoch %llu%s",
             (unsigned long long)v->index, (unsigned long long)v->epoch,
             v->type == CORE_ENTRY_CONFIG ? " (config)" : "",
             (unsigned long long)ix->runs[a->run].epoch, config ? " (config)" : "");
    return damaged(w, k->seg->seq, k->off, why);
}

/* Starts a walk at sparse index point k. */
static int walk_from(struct wal *w, size_t k, struct walk *walk)
{
    const struct ix_point *pt = &w->ix.points[k];

    walk->seg = wal_segment(w, pt->seq);
    walk->off = pt->offset;
    if (!walk->seg)
        return damaged(w, pt->seq, pt->offset, "the index points to a segment that is gone");
    return segment_fd(w, pt->seq, &walk->fd);
}

/* Walks to the entry `expect` (the next in the walk), checks its index, and
 * reads it (or just its index, when it is below what is wanted). */
static int next_entry(struct wal *w, struct walk *k, uint64_t expect, bool wanted, bool meta_only,
                      struct entry_view *v)
{
    char why[96];
    int rc;

    for (;;) {
        rc = walk_record(w, k, wanted ? (meta_only ? WAL_META_PREFIX : SIZE_MAX) : 8);
        if (rc < 0)
            return rc;
        if (k->type == REC_ENTRY)
            break;
        k->off += REC_HEADER_SIZE + k->len;
    }
    if (!wanted) {
        v->index = k->len >= 8 ? get_u64(k->h + REC_HEADER_SIZE) : 0;
    } else {
        rc = meta_only ? walk_meta(w, k, v) : walk_full(w, k, v);
        if (rc < 0)
            return rc;
    }
    if (v->index != expect) {
        snprintf(why, sizeof why, "entry %llu where the index expects %llu",
                 (unsigned long long)v->index, (unsigned long long)expect);
        return damaged(w, k->seg->seq, k->off, why);
    }
    return 0;
}

int wal_read(struct wal *w, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
             const struct core_entry **out, size_t *n)
{
    struct lent l = {0};
    struct agree a;
    struct walk k;
    size_t at;
    uint64_t expect, stop;
    int rc;

    *out = NULL;
    *n = 0;
    shrink_read_buffers(w);
    if (lo == 0 || lo < w->ix.first || lo > w->ix.last || hi < lo) {
        wal_set_err(w, "read of %llu..%llu outside the log (%llu..%llu)", (unsigned long long)lo,
                    (unsigned long long)hi, (unsigned long long)w->ix.first,
                    (unsigned long long)w->ix.last);
        return -ERANGE;
    }
    if (hi > w->ix.last)
        hi = w->ix.last;
    a = (struct agree){ix_run_at(&w->ix, lo), ix_config_from(&w->ix, lo)};
    at = ix_find(&w->ix, lo);
    expect = w->ix.points[at].index;
    if ((rc = walk_from(w, at, &k)) < 0)
        return rc;
    while (expect <= hi) {
        struct entry_view v;
        bool wanted = expect >= lo;

        stop = at + 1 < w->ix.n_points ? w->ix.points[at + 1].index : w->ix.last + 1;
        if (expect == stop) {
            /* What follows lies elsewhere: a later segment, or after a
             * TRUNCATE that replaced it. */
            if ((rc = walk_from(w, ++at, &k)) < 0)
                return rc;
            continue;
        }
        if ((rc = next_entry(w, &k, expect, wanted, meta_only, &v)) < 0)
            return rc;
        if (wanted && (rc = check_agrees(w, &a, &k, &v)) < 0)
            return rc;
        if (wanted) {
            size_t cost = (size_t)v.dlen + CORE_ENTRY_OVERHEAD;

            if (l.n > 0 && l.bytes + cost > max_bytes)
                break;
            l.bytes += cost;
            if (lend(w, &l, &v, meta_only) < 0) {
                wal_set_err(w, "out of memory reading entries %llu..", (unsigned long long)lo);
                return -ENOMEM;
            }
        }
        k.off += REC_HEADER_SIZE + k.len;
        expect++;
    }
    lend_finish(w, &l, meta_only);
    *out = w->out;
    *n = l.n;
    return 0;
}

static int store_read(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
                      const struct core_entry **out, size_t *n)
{
    return wal_read(arg, lo, hi, max_bytes, meta_only, out, n);
}

struct core_store wal_store(struct wal *w)
{
    return (struct core_store){.arg = w, .read = store_read};
}
