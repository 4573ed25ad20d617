/*
 * replica/storage/wal_open.c — opening a data dir and recovering its log:
 * the lock, leftovers of interrupted creations, the legacy wal.log, then the
 * segments in order (a sealed one through its footer, any other record by
 * record), ending in the summary wal_open hands the core. The rules are in
 * wal.c ("RECOVERY", "LEGACY").
 */
#define _GNU_SOURCE /* fallocate */
#include "storage/wal_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* What recovery hands over, besides the WAL itself. */
struct rec_storage {
    void *arrays; /* the runs, then the config indexes */
    uint8_t *snapshot;
};

/* ------------------------------------------------------------------------
 * The directory
 * ------------------------------------------------------------------------ */

static int fsync_path(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -errno;
    rc = wal_fsync_fd(fd, false);
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
        wal_errf(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        return rc;
    }
    parent = strdup(dir);
    if (!parent) {
        wal_errf(err, errlen, "out of memory");
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
    rc = fsync_path(parent);
    if (rc < 0)
        wal_errf(err, errlen, "cannot sync directory %s: %s", parent, strerror(-rc));
    free(parent);
    return rc;
}

/* Two replicas sharing one data dir would interleave records and destroy
 * each other's log: an exclusive lock on wal.lock keeps the second out. */
static int lock_dir(struct wal *w, char *err, size_t errlen)
{
    int rc;

    w->lock_fd = openat(w->dir_fd, WAL_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->lock_fd < 0) {
        rc = -errno;
        wal_errf(err, errlen, "cannot open %s/" WAL_LOCK_NAME ": %s", w->dir, strerror(errno));
        return rc;
    }
    if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (errno == EWOULDBLOCK)
            wal_errf(err, errlen,
                     "%s/" WAL_LOCK_NAME " is locked by another process: is another replica "
                     "using the data dir %s?",
                     w->dir, w->dir);
        else
            wal_errf(err, errlen, "cannot lock %s/" WAL_LOCK_NAME ": %s", w->dir, strerror(errno));
        return rc;
    }
    return 0;
}

static bool is_leftover(const char *name)
{
    size_t len = strlen(name), tlen = strlen(WAL_TMP_SUFFIX);

    return len > tlen && strcmp(name + len - tlen, WAL_TMP_SUFFIX) == 0 &&
           (strncmp(name, "wal-", 4) == 0 || strcmp(name, WAL_SNAPSHOT_NAME WAL_TMP_SUFFIX) == 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The segments' sequence numbers, ascending, and whether wal.log is there.
 * Deletes what interrupted creations left (*.tmp). */
static int list_dir(struct wal *w, uint64_t **seqs, size_t *n, bool *legacy, char *err,
                    size_t errlen)
{
    int fd = dup(w->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    size_t cap = 0;
    bool removed = false;
    uint64_t seq;
    int rc = 0;

    *seqs = NULL;
    *n = 0;
    *legacy = false;
    if (!d) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
        wal_errf(err, errlen, "cannot list %s: %s", w->dir, strerror(-rc));
        return rc;
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, WAL_LEGACY_NAME) == 0) {
            *legacy = true;
        } else if (is_leftover(de->d_name)) {
            unlinkat(w->dir_fd, de->d_name, 0);
            removed = true;
        } else if (wal_parse_segment_name(de->d_name, &seq)) {
            if (*n == cap) {
                uint64_t *s = realloc(*seqs, (cap = cap ? cap * 2 : 64) * sizeof *s);

                if (!s) {
                    rc = -ENOMEM;
                    wal_errf(err, errlen, "out of memory");
                    break;
                }
                *seqs = s;
            }
            (*seqs)[(*n)++] = seq;
        }
    }
    closedir(d);
    if (rc == 0 && removed && (rc = wal_fsync_fd(w->dir_fd, false)) < 0)
        wal_errf(err, errlen, "cannot sync directory %s: %s", w->dir, strerror(-rc));
    if (rc < 0) {
        free(*seqs);
        *seqs = NULL;
        return rc;
    }
    if (*n > 0)
        qsort(*seqs, *n, sizeof **seqs, cmp_u64);
    return 0;
}

/* Segments are deleted oldest first and created one after the other: a
 * hole cannot come from a crash. */
static int check_layout(struct wal *w, const uint64_t *seqs, size_t n, bool legacy, char *err,
                        size_t errlen)
{
    char a[WAL_NAME_MAX], b[WAL_NAME_MAX];

    if (legacy && n > 0) {
        wal_errf(err, errlen,
                 "%s holds both a legacy " WAL_LEGACY_NAME " and log segments; refusing to start. "
                 "Move one of them aside.",
                 w->dir);
        return -EEXIST;
    }
    for (size_t i = 1; i < n; i++) {
        if (seqs[i] != seqs[i - 1] + 1) {
            wal_segment_name(a, seqs[i - 1], false);
            wal_segment_name(b, seqs[i], false);
            wal_errf(err, errlen,
                     "%s: segments missing between %s and %s; refusing to start. " WAL_ADVICE,
                     w->dir, a, b);
            return -EILSEQ;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * One segment
 * ------------------------------------------------------------------------ */

struct scan {
    struct wal *w;
    char path[1024]; /* for messages */
    int fd;
    uint64_t size;
    bool last;            /* the last segment */
    bool tail_ok;         /* a torn tail may be cut off: in the last, after its header */
    bool first;           /* the first segment: its base starts the log */
    bool has_hint;        /* a sound trailer says where the records end: */
    uint64_t footer_hint; /* here */
    struct segment seg;
    char *err;
    size_t errlen;
};

static int refuse_invalid(struct scan *s, uint64_t off, const char *why)
{
    wal_errf(s->err, s->errlen,
             "%s: invalid record at offset %llu (%s); refusing to start. " WAL_ADVICE, s->path,
             (unsigned long long)off, why);
    return -EILSEQ;
}

static int read_failed(struct scan *s, int rc)
{
    wal_errf(s->err, s->errlen, "cannot read %s: %s", s->path, strerror(-rc));
    return rc;
}

/* Bytes [off, off + n) of the file. */
static int scan_get(struct scan *s, uint64_t off, size_t n, const uint8_t **p)
{
    int rc = wal_window_get(&s->w->win, s->fd, s->seg.seq, off, n, s->size, p);

    return rc < 0 ? read_failed(s, rc) : rc;
}

static int zeros_from(struct scan *s, uint64_t off, bool *zero)
{
    *zero = true;
    while (off < s->size && *zero) {
        size_t n = s->size - off < WAL_READ_CHUNK ? (size_t)(s->size - off) : WAL_READ_CHUNK;
        const uint8_t *p;
        int rc = scan_get(s, off, n, &p);

        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            if (p[i])
                *zero = false;
        off += n;
    }
    return 0;
}

enum { SCAN_TORN = 1 };

/* A record cut short by the end of the file at off: a torn write in the
 * last segment; impossible in one sealed before the next was created. */
static int cut_short(struct scan *s, uint64_t off)
{
    if (s->tail_ok)
        return SCAN_TORN;
    wal_errf(
        s->err, s->errlen,
        "%s: record at offset %llu cut short by the end of the %s; refusing to start. " WAL_ADVICE,
        s->path, (unsigned long long)off, s->last ? "file" : "closed segment");
    return -EILSEQ;
}

/* A damaged record at off whose bytes end at `end` (just its header when
 * the length cannot be trusted). SCAN_TORN when it is a torn tail. */
static int damaged(struct scan *s, uint64_t off, uint64_t end, const char *why)
{
    bool zero = true;
    int rc;

    if (s->tail_ok && end < s->size && (rc = zeros_from(s, end, &zero)) < 0)
        return rc;
    if (s->tail_ok && zero)
        return SCAN_TORN;
    wal_errf(s->err, s->errlen,
             "%s: corrupted record at offset %llu (%s) followed by %llu more bytes%s; refusing to "
             "start. " WAL_ADVICE,
             s->path, (unsigned long long)off, why,
             (unsigned long long)(end < s->size ? s->size - end : 0),
             s->last ? "" : " in a closed segment");
    return -EILSEQ;
}

/* The record at off, checked. 0 with *h (header and payload), SCAN_TORN,
 * or a refusal. */
static int scan_record(struct scan *s, uint64_t off, const uint8_t **h, uint8_t *type,
                       uint32_t *len)
{
    uint64_t left = s->size - off;
    const char *why;
    int rc;

    if (left < REC_HEADER_SIZE)
        return cut_short(s, off);
    if ((rc = scan_get(s, off, REC_HEADER_SIZE, h)) != 0)
        return rc;
    why = rec_check_header(*h, type, len);
    if (why)
        return damaged(s, off, off + REC_HEADER_SIZE, why);
    if (left - REC_HEADER_SIZE < *len)
        return cut_short(s, off);
    if ((rc = scan_get(s, off, REC_HEADER_SIZE + *len, h)) != 0)
        return rc;
    why = rec_check_payload(*h);
    if (why)
        return damaged(s, off, off + REC_HEADER_SIZE + *len, why);
    if (!rec_reserved_clear(*h))
        return refuse_invalid(s, off, "reserved header bytes set");
    return 0;
}

static int apply_state(struct scan *s, uint64_t off, struct cursor *c)
{
    struct core_hard_state hs;
    char why[96];

    if (!rec_take_state(c, &hs) || c->left != 0)
        return refuse_invalid(s, off, "malformed state record");
    /* A replica never goes back to an earlier epoch. */
    if (hs.epoch < s->w->hs.epoch) {
        snprintf(why, sizeof why, "state of epoch %llu after epoch %llu",
                 (unsigned long long)hs.epoch, (unsigned long long)s->w->hs.epoch);
        return refuse_invalid(s, off, why);
    }
    s->w->hs = hs;
    return 0;
}

static int apply_entry(struct scan *s, uint64_t off, struct cursor *c)
{
    struct log_index *ix = &s->w->ix;
    struct entry_view v;
    uint64_t before = ix_last_epoch(ix);
    char why[96];

    if (!rec_take_entry(c, &v))
        return refuse_invalid(s, off, "malformed entry record");
    /* The log must be contiguous: a gap means records were lost or
     * reordered, which no crash can cause. */
    if (v.index != ix->last + 1) {
        snprintf(why, sizeof why, "entry index %llu where %llu was expected",
                 (unsigned long long)v.index, (unsigned long long)ix->last + 1);
        return refuse_invalid(s, off, why);
    }
    /* Epochs never go down along a log. */
    if (v.epoch < before) {
        snprintf(why, sizeof why, "entry %llu of epoch %llu after epoch %llu",
                 (unsigned long long)v.index, (unsigned long long)v.epoch,
                 (unsigned long long)before);
        return refuse_invalid(s, off, why);
    }
    if (ix_add_entry(ix, v.index, v.epoch, (enum core_entry_type)v.type, s->seg.seq, off) < 0) {
        wal_errf(s->err, s->errlen, "%s: out of memory during replay", s->path);
        return -ENOMEM;
    }
    return 0;
}

static int apply_truncate(struct scan *s, uint64_t off, struct cursor *c)
{
    uint64_t from = take_u64(c);

    if (!c->ok || c->left != 0 || from == 0)
        return refuse_invalid(s, off, "malformed truncate record");
    ix_cut(&s->w->ix, from);
    if (s->seg.min_truncate == 0 || from < s->seg.min_truncate)
        s->seg.min_truncate = from;
    return 0;
}

static int apply_checkpoint(struct scan *s, uint64_t off, struct cursor *c)
{
    struct core_checkpoint cp;

    if (!rec_take_checkpoint(c, &cp) || c->left != 0)
        return refuse_invalid(s, off, "malformed checkpoint record");
    rec_checkpoint_keep(&s->w->cp, &cp);
    return 0;
}

/* Where the log before a segment must end, for it to follow on. */
static int check_base(struct scan *s, uint64_t base)
{
    if (s->first) {
        ix_init(&s->w->ix, base);
        return 0;
    }
    if (base == s->w->ix.last + 1)
        return 0;
    wal_errf(s->err, s->errlen,
             "%s: the segment starts at index %llu but the log before it ends at %llu; refusing "
             "to start. " WAL_ADVICE,
             s->path, (unsigned long long)base, (unsigned long long)s->w->ix.last);
    return -EILSEQ;
}

/* The SEGMENT record every segment but the legacy one starts with. A
 * segment is renamed into place only once it is synced, so no crash
 * leaves it damaged. */
static int scan_header(struct scan *s)
{
    const uint8_t *h;
    uint8_t type;
    uint32_t len;
    struct cursor c;
    struct core_hard_state hs;
    struct core_checkpoint cp;
    uint32_t version;
    uint64_t seq;
    int rc;

    s->tail_ok = false;
    rc = scan_record(s, 0, &h, &type, &len);
    s->tail_ok = s->last;
    if (rc != 0)
        return rc;
    if (type != REC_SEGMENT)
        return refuse_invalid(s, 0, "the segment does not start with its header");
    c = cursor_of(h + REC_HEADER_SIZE, len);
    version = take_u32(&c);
    seq = take_u64(&c);
    s->seg.base = take_u64(&c);
    if (!rec_take_state(&c, &hs) || !rec_take_checkpoint(&c, &cp) || c.left != 0 ||
        s->seg.base == 0 || s->seg.base > WAL_INDEX_MAX)
        return refuse_invalid(s, 0, "malformed segment header");
    if (version != WAL_FORMAT_VERSION)
        return refuse_invalid(s, 0, "unknown format version");
    if (seq != s->seg.seq)
        return refuse_invalid(s, 0, "sequence number differs from the file name's");
    if ((rc = check_base(s, s->seg.base)) < 0)
        return rc;
    if (hs.epoch < s->w->hs.epoch)
        return refuse_invalid(s, 0, "hard state of an earlier epoch than the segment before");
    s->w->hs = hs;
    rec_checkpoint_keep(&s->w->cp, &cp);
    s->seg.start = REC_HEADER_SIZE + len;
    return 0;
}

/* A FOOTER record at off ends the records. In a closed segment that is
 * all (its trailer was unreadable, or the footer would have been used). In
 * the last one it is a seal whose next segment never got its name: it is
 * cut off, trailer and all, rather than trusted unchecked later on, and the
 * segment is open again (sealed anew when full). Returns 1 to cut. */
static int scan_footer(struct scan *s, uint64_t off)
{
    s->seg.end = off;
    if (s->last)
        return 1;
    s->seg.sealed = true;
    return 0;
}

/* Cuts the last segment at end (a torn tail, or an interrupted seal).
 * Synced before we go on, so that records appended later can never end up
 * behind the remains of the torn one. */
static int cut_tail(struct scan *s, uint64_t end)
{
    int rc = 0;

    if (ftruncate(s->fd, (off_t)end) != 0)
        rc = -errno;
    if (rc == 0)
        rc = wal_fsync_fd(s->fd, false);
    if (rc < 0) {
        wal_errf(s->err, s->errlen, "cannot truncate the torn tail of %s at %llu: %s", s->path,
                 (unsigned long long)end, strerror(-rc));
        return rc;
    }
    s->size = end;
    s->seg.end = end;
    return 0;
}

/* Reads the segment record by record, applying each to the WAL. */
static int scan_segment(struct scan *s)
{
    uint64_t off = 0;
    int rc;

    if (s->seg.seq > 0 && (rc = scan_header(s)) < 0)
        return rc;
    if (s->seg.seq == 0) {
        s->seg.base = 1;
        if ((rc = check_base(s, 1)) < 0)
            return rc;
    }
    off = s->seg.start;
    ix_segment_start(&s->w->ix);
    while (off < s->size) {
        const uint8_t *h;
        uint8_t type;
        uint32_t len;
        struct cursor c;
        char why[64];

        /* A sealed segment whose trailer is sound but footer is not. */
        if (s->has_hint && off == s->footer_hint && !s->last) {
            s->seg.end = off;
            s->seg.sealed = true;
            return 0;
        }
        rc = scan_record(s, off, &h, &type, &len);
        if (rc == SCAN_TORN)
            return cut_tail(s, off);
        if (rc < 0)
            return rc;
        c = cursor_of(h + REC_HEADER_SIZE, len);
        switch (type) {
        case REC_STATE:
            rc = apply_state(s, off, &c);
            break;
        case REC_ENTRY:
            rc = apply_entry(s, off, &c);
            break;
        case REC_TRUNCATE:
            rc = apply_truncate(s, off, &c);
            break;
        case REC_CHECKPOINT:
            rc = apply_checkpoint(s, off, &c);
            break;
        case REC_FOOTER:
            rc = scan_footer(s, off);
            return rc == 1 ? cut_tail(s, off) : rc;
        case REC_SEGMENT:
            rc = refuse_invalid(s, off, "a segment header in the middle of a segment");
            break;
        default:
            snprintf(why, sizeof why, "unknown record type %u", type);
            rc = refuse_invalid(s, off, why);
        }
        if (rc < 0)
            return rc;
        off += REC_HEADER_SIZE + len;
    }
    s->seg.end = off;
    /* A closed segment whose footer is missing altogether still ends
     * here; the next segment's base checks nothing was lost. */
    s->seg.sealed = !s->last;
    return 0;
}

/* Whether a sealed segment's footer can stand for its records: sound in
 * itself (wal_footer_decode) and following on from the log before it. */
static bool footer_fits(struct scan *s, const struct footer *f, uint64_t foff)
{
    const struct log_index *ix = &s->w->ix, *sl = &f->slice;
    uint64_t last = ix->last, first = ix->first, mt = f->min_truncate;

    if (f->seq != s->seg.seq || f->base == 0 || (s->seg.seq == 0 && f->base != 1))
        return false;
    if (!s->first && f->base != ix->last + 1)
        return false;
    if (s->first) {
        first = f->base;
        last = f->base - 1;
    }
    for (size_t i = 0; i < sl->n_points; i++)
        if (sl->points[i].offset >= foff || sl->points[i].offset < (s->seg.seq ? 20 : 0))
            return false;
    /* The log before, as this segment's truncations leave it. */
    if (mt > 0 && mt <= last) {
        if (mt < first)
            first = mt;
        last = mt - 1;
    }
    if (sl->last < sl->first)
        return f->last_index == last && f->hs.epoch >= s->w->hs.epoch;
    if (sl->first != last + 1 || f->last_index != sl->last || f->hs.epoch < s->w->hs.epoch)
        return false;
    return s->first || last < first || sl->runs[0].epoch >= ix_epoch_at(ix, last);
}

/* Takes a sealed segment in through its trailer and footer. 0 when done,
 * 1 when they cannot be used (the segment is then scanned), or an error. */
static int try_footer(struct scan *s)
{
    const uint8_t *t, *h;
    uint64_t foff;
    uint32_t flen, len;
    uint8_t type;
    struct footer f;
    int rc;

    if (s->size < WAL_TRAILER_SIZE + REC_HEADER_SIZE)
        return 1;
    if ((rc = scan_get(s, s->size - WAL_TRAILER_SIZE, WAL_TRAILER_SIZE, &t)) < 0)
        return rc;
    if (!wal_trailer_decode(t, &foff, &flen) || foff > s->size - WAL_TRAILER_SIZE ||
        flen != s->size - WAL_TRAILER_SIZE - foff || flen < REC_HEADER_SIZE)
        return 1;
    s->has_hint = true;
    s->footer_hint = foff;
    if ((rc = scan_get(s, foff, flen, &h)) < 0)
        return rc;
    if (rec_check_header(h, &type, &len) || type != REC_FOOTER || len != flen - REC_HEADER_SIZE ||
        rec_check_payload(h) || !rec_reserved_clear(h))
        return 1;
    if (!wal_footer_decode(h + REC_HEADER_SIZE, len, &f))
        return 1;
    if (!footer_fits(s, &f, foff)) {
        ix_free(&f.slice);
        return 1;
    }
    if (s->first)
        ix_init(&s->w->ix, f.base);
    rc = ix_append(&s->w->ix, &f.slice, f.min_truncate);
    ix_free(&f.slice);
    if (rc < 0) {
        wal_errf(s->err, s->errlen, "%s: out of memory reading its footer", s->path);
        return rc;
    }
    s->w->hs = f.hs;
    rec_checkpoint_keep(&s->w->cp, &f.cp);
    s->seg.base = f.base;
    s->seg.end = foff;
    s->seg.min_truncate = f.min_truncate;
    s->seg.sealed = true;
    return 0;
}

static int add_recovered(struct wal *w, const struct segment *seg)
{
    if (w->n_segs == w->cap_segs) {
        size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
        struct segment *p = realloc(w->segs, cap * sizeof *p);

        if (!p)
            return -ENOMEM;
        w->segs = p;
        w->cap_segs = cap;
    }
    w->segs[w->n_segs++] = *seg;
    return 0;
}

/* Recovers one segment; the last is left open for appends. */
static int recover_segment(struct wal *w, uint64_t seq, bool first, bool last, bool legacy,
                           char *err, size_t errlen)
{
    struct scan s = {.w = w,
                     .fd = -1,
                     .last = last,
                     .tail_ok = last,
                     .first = first,
                     .err = err,
                     .errlen = errlen};
    char name[WAL_NAME_MAX];
    struct stat st;
    int rc;

    s.seg.seq = seq;
    if (legacy)
        snprintf(name, sizeof name, "%s", WAL_LEGACY_NAME);
    else
        wal_segment_name(name, seq, false);
    snprintf(s.path, sizeof s.path, "%s/%s", w->dir, name);
    s.fd = openat(w->dir_fd, name, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (s.fd < 0 || fstat(s.fd, &st) != 0) {
        rc = -errno;
        wal_errf(err, errlen, "cannot open %s: %s", s.path, strerror(errno));
        goto out;
    }
    s.size = (uint64_t)st.st_size;
    rc = last ? 1 : try_footer(&s);
    if (rc == 1)
        rc = scan_segment(&s);
    if (rc < 0)
        goto out;
    s.seg.size = s.seg.sealed ? s.size : s.seg.end;
    if ((rc = add_recovered(w, &s.seg)) < 0) {
        wal_errf(err, errlen, "out of memory");
        goto out;
    }
    if (last) {
        /* Best effort: a full disk shows up when writing, handled there. */
        (void)!fallocate(s.fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)w->segment_bytes);
        w->cur_fd = s.fd;
        s.fd = -1;
    }
out:
    if (s.fd >= 0)
        close(s.fd);
    wal_window_forget(&w->win);
    wal_window_shrink(&w->win);
    return rc;
}

/* ------------------------------------------------------------------------
 * What wal_open hands over
 * ------------------------------------------------------------------------ */

static int build_recovered(struct wal *w, const struct snapshot *snap, struct wal_recovered *rec)
{
    size_t runs = w->ix.n_runs * sizeof *w->ix.runs, configs = w->ix.n_configs * 8;
    struct rec_storage *st = calloc(1, sizeof *st);
    struct core_recovered *c = &rec->core;

    if (!st || !(st->arrays = malloc(runs + configs + 1))) {
        free(st);
        return -ENOMEM;
    }
    c->hs = w->hs;
    c->last_index = w->ix.last;
    c->checkpoint = w->cp;
    if (w->ix.last >= w->ix.first) {
        memcpy(st->arrays, w->ix.runs, runs);
        c->runs = st->arrays;
        c->n_runs = w->ix.n_runs;
    }
    if (w->ix.n_configs > 0) {
        memcpy((uint8_t *)st->arrays + runs, w->ix.configs, configs);
        c->config_indexes = (const uint64_t *)((uint8_t *)st->arrays + runs);
        c->n_config = w->ix.n_configs;
    }
    st->snapshot = snap->data;
    c->snapshot = snap->data;
    c->snapshot_len = snap->len;
    rec->snapshot_index = snap->index;
    rec->snapshot_epoch = snap->epoch;
    rec->snapshot_data = snap->data;
    rec->snapshot_len = snap->len;
    rec->storage = st;
    return 0;
}

void wal_recovered_free(struct wal_recovered *rec)
{
    struct rec_storage *st;

    if (!rec)
        return;
    st = rec->storage;
    if (st) {
        free(st->arrays);
        free(st->snapshot);
        free(st);
    }
    memset(rec, 0, sizeof *rec);
}

/* ------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------ */

static struct wal *wal_alloc(const char *dir, uint64_t segment_bytes)
{
    struct wal *w = calloc(1, sizeof *w);

    if (!w)
        return NULL;
    w->dir_fd = w->lock_fd = w->cur_fd = w->rd_fd = -1;
    w->rd_seq = UINT64_MAX;
    w->segment_bytes = segment_bytes;
    wal_window_forget(&w->win);
    ix_init(&w->ix, 1);
    w->dir = strdup(dir);
    if (!w->dir) {
        free(w);
        return NULL;
    }
    return w;
}

/* The legacy file, recovered, takes its segment name. */
static int migrate_legacy(struct wal *w, char *err, size_t errlen)
{
    char name[WAL_NAME_MAX];
    int rc;

    wal_segment_name(name, 0, false);
    if (renameat(w->dir_fd, WAL_LEGACY_NAME, w->dir_fd, name) != 0) {
        rc = -errno;
        wal_errf(err, errlen, "cannot rename %s/" WAL_LEGACY_NAME " to %s: %s", w->dir, name,
                 strerror(errno));
        return rc;
    }
    rc = wal_fsync_fd(w->dir_fd, false);
    if (rc < 0)
        wal_errf(err, errlen, "cannot sync directory %s: %s", w->dir, strerror(-rc));
    return rc;
}

static int recover(struct wal *w, char *err, size_t errlen)
{
    uint64_t *seqs;
    size_t n;
    bool legacy;
    int rc = list_dir(w, &seqs, &n, &legacy, err, errlen);

    if (rc < 0)
        return rc;
    rc = check_layout(w, seqs, n, legacy, err, errlen);
    if (rc == 0 && legacy)
        rc = recover_segment(w, 0, true, true, true, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = recover_segment(w, seqs[i], i == 0, i + 1 == n, false, err, errlen);
    free(seqs);
    if (rc == 0 && legacy)
        rc = migrate_legacy(w, err, errlen);
    return rc;
}

int wal_open(const char *dir, const struct wal_options *o, struct wal **out,
             struct wal_recovered *rec, char *err, size_t errlen)
{
    uint64_t segment_bytes = o && o->segment_bytes ? o->segment_bytes : WAL_DEFAULT_SEGMENT;
    struct snapshot snap = {0};
    struct wal *w;
    int rc;

    *out = NULL;
    memset(rec, 0, sizeof *rec);
    wal_errf(err, errlen, "%s", "");
    if (segment_bytes < WAL_MIN_SEGMENT) {
        wal_errf(err, errlen, "segment size %llu below the minimum of %u bytes",
                 (unsigned long long)segment_bytes, WAL_MIN_SEGMENT);
        return -EINVAL;
    }
    w = wal_alloc(dir, segment_bytes);
    if (!w) {
        wal_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = ensure_dir(dir, err, errlen);
    if (rc < 0)
        goto err_after_alloc;
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_fd < 0) {
        rc = -errno;
        wal_errf(err, errlen, "cannot open data dir %s: %s", dir, strerror(errno));
        goto err_after_alloc;
    }
    if ((rc = lock_dir(w, err, errlen)) < 0 || (rc = recover(w, err, errlen)) < 0 ||
        (rc = wal_snapshot_load(w, &snap, err, errlen)) < 0)
        goto err_after_alloc;
    /* A snapshot the log does not lead to (it ends before it, or holds
     * another epoch there) was installed from a primary, and a crash came
     * before the old segments were all gone: they are superseded. */
    if (snap.index > 0 &&
        (w->ix.last < snap.index || ix_epoch_at(&w->ix, snap.index) != snap.epoch) &&
        (w->ix.last < snap.index || w->ix.first <= snap.index) &&
        (rc = wal_reset(w, snap.index + 1)) < 0) {
        wal_errf(err, errlen, "%s", w->err);
        free(snap.data);
        goto err_after_alloc;
    }
    rc = build_recovered(w, &snap, rec);
    if (rc < 0) {
        wal_errf(err, errlen, "%s: out of memory", dir);
        free(snap.data);
        goto err_after_alloc;
    }
    w->buf_last = w->ix.last;
    *out = w;
    return 0;

err_after_alloc:
    wal_close(w);
    return rc;
}
