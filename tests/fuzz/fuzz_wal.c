/*
 * tests/fuzz/fuzz_wal.c — recovery of the durable log (replica/storage/wal*.c)
 * from arbitrary files, and reads from what it recovered.
 *
 * Input: one mode byte, then the files, written into a fresh temp dir:
 *   mode % 3 == 0   the rest is a legacy <dir>/wal.log
 *   mode % 3 == 1   the rest is segment 1 (wal-0000000000000001.seg)
 *   mode % 3 == 2   u16 n, then segment 1 (n bytes, or all there is) and
 *                   segment 2 (the rest): a closed segment, taken in through
 *                   its footer when that is sound, and the last one
 * With (mode / 3) % 2 == 1 every record's checksums (and a trailer's) are
 * made right first, so that what lies behind them is fuzzed too: footers,
 * segment headers and payloads that pass their checksums but not the rest.
 * The files are opened with 1 KiB segments, so that appends roll over.
 *
 * wal_open must either refuse, with a reason and without touching any file
 * (a legacy wal.log keeps its name), or recover a log the core can start
 * from: a sane hard state (at most LIMIT_MEMBERS bootstrap ids, every id
 * valid), epoch runs ascending from the first index with epochs going up,
 * CONFIG indexes ascending inside the log, and every entry readable with
 * wal_read (with and without its data) in agreement with them — except that
 * damage behind a sound footer may show up as -EILSEQ, and only then.
 * Recovery only ever cuts files short. What it recovers must be what it
 * keeps: after appending one entry, syncing and reopening, the same log
 * plus that entry comes back. The temp dir is removed after every run.
 */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "storage/crc32c.h"
#include "storage/wal.h"
#include "validate.h"

#define SEGMENT_BYTES 1024
#define MAX_KEPT      4096 /* entries compared across the reopen */

static char base_dir[256];
static char run_dir[300]; /* this run's temp dir, "" between runs */

static void remove_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    char path[600];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* Leaves nothing behind, also when a check fails. */
static void remove_run_dir(void)
{
    if (run_dir[0] == '\0') {
        return;
    }
    remove_files(run_dir);
    rmdir(run_dir);
    run_dir[0] = '\0';
}

static void init_base(void)
{
    if (base_dir[0] != '\0') {
        return;
    }
    /* tmpfs when there is one: fsync there costs nothing. */
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(base_dir, sizeof(base_dir), "%s/fuzz_wal.XXXXXX", root ? root : "/tmp");
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_CHECK(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < size) {
        ssize_t k = write(fd, data + done, size - done);
        FUZZ_CHECK(k > 0, "cannot write %s: %s", path, strerror(errno));
        done += (size_t)k;
    }
    close(fd);
}

/* The file's bytes, or NULL when it does not exist. */
static uint8_t *read_whole(const char *path, size_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *size = 0;
        return NULL;
    }
    FUZZ_CHECK(fd >= 0 && fstat(fd, &st) == 0, "cannot open %s: %s", path, strerror(errno));
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    FUZZ_CHECK(buf != NULL, "out of memory");
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + done, (size_t)st.st_size - done);
        FUZZ_CHECK(k > 0, "cannot read %s", path);
        done += (size_t)k;
    }
    close(fd);
    *size = done;
    return buf;
}

static bool bounded(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* The files the input became. */
struct input_file {
    char path[340];
    uint8_t *data; /* a copy, checksums made right in repair mode */
    size_t size;
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Gives every record from the start (as long as they carry the magic and
 * fit) the checksums it should have, and a trailer at the end its own. */
static void repair(uint8_t *p, size_t size)
{
    size_t off = 0;
    while (size - off >= 20 && memcmp(p + off, "RWAL", 4) == 0) {
        uint32_t len = get32(p + off + 8);
        if (len > size - off - 20) {
            break;
        }
        put32(p + off + 12, crc32c(0, p + off + 20, len));
        put32(p + off + 16, crc32c(0, p + off, 16));
        off += 20 + (size_t)len;
    }
    if (size >= 24 && memcmp(p + size - 24, "RWTL", 4) == 0) {
        put32(p + size - 4, crc32c(0, p + size - 24, 20));
    }
}

/* Recovery may cut a file short (or migrate wal.log), never change bytes. */
static void check_files(const struct input_file *files, size_t n, bool legacy, const char *dir,
                        bool opened)
{
    for (size_t i = 0; i < n; i++) {
        const char *path = files[i].path;
        char seg0[340];
        if (legacy && opened) {
            FUZZ_CHECK(access(path, F_OK) != 0, "wal.log still there after opening");
            snprintf(seg0, sizeof(seg0), "%s/wal-0000000000000000.seg", dir);
            path = seg0;
        }
        size_t len;
        uint8_t *now = read_whole(path, &len);
        FUZZ_CHECK(now != NULL, "%s is gone", path);
        if (opened) {
            FUZZ_CHECK(len <= files[i].size && (len == 0 || memcmp(now, files[i].data, len) == 0),
                       "recovery changed bytes it kept in %s", path);
        } else {
            FUZZ_CHECK(len == files[i].size && (len == 0 || memcmp(now, files[i].data, len) == 0),
                       "refusing to open changed %s (%zu bytes, was %zu)", path, len,
                       files[i].size);
        }
        free(now);
    }
}

static void check_hard_state(const struct core_hard_state *hs)
{
    FUZZ_CHECK(bounded(hs->voted_for, sizeof(hs->voted_for)), "voted_for not terminated");
    FUZZ_CHECK(hs->voted_for[0] == '\0' || validate_id(hs->voted_for),
               "recovered a vote for \"%s\", which fails validate_id", hs->voted_for);
    FUZZ_CHECK(hs->n_bootstrap <= LIMIT_MEMBERS, "recovered %u bootstrap ids", hs->n_bootstrap);
    for (unsigned i = 0; i < hs->n_bootstrap; i++) {
        FUZZ_CHECK(bounded(hs->bootstrap[i], sizeof(hs->bootstrap[i])), "bootstrap id too long");
        FUZZ_CHECK(validate_id(hs->bootstrap[i]),
                   "recovered bootstrap id \"%s\", which fails validate_id", hs->bootstrap[i]);
    }
}

/* Runs and config indexes describe first..last, as the core needs them. */
static void check_summary(const struct core_recovered *c, uint64_t first)
{
    uint64_t last = c->last_index;
    FUZZ_CHECK(first >= 1 && first <= last + 1, "first index %llu, last %llu",
               (unsigned long long)first, (unsigned long long)last);
    if (first > last) {
        FUZZ_CHECK(c->n_runs == 0 && c->n_config == 0, "an empty log with runs or configs");
        return;
    }
    FUZZ_CHECK(c->n_runs >= 1 && c->runs[0].first_index == first,
               "the runs do not start at the first index");
    for (size_t i = 1; i < c->n_runs; i++) {
        FUZZ_CHECK(c->runs[i].first_index > c->runs[i - 1].first_index &&
                       c->runs[i].first_index <= last,
                   "run %zu starts at %llu", i, (unsigned long long)c->runs[i].first_index);
        FUZZ_CHECK(c->runs[i].epoch > c->runs[i - 1].epoch,
                   "run %zu of epoch %llu after one of epoch %llu: epochs go down", i,
                   (unsigned long long)c->runs[i].epoch, (unsigned long long)c->runs[i - 1].epoch);
    }
    for (size_t i = 0; i < c->n_config; i++) {
        FUZZ_CHECK(c->config_indexes[i] >= first && c->config_indexes[i] <= last &&
                       (i == 0 || c->config_indexes[i] > c->config_indexes[i - 1]),
                   "config index %llu", (unsigned long long)c->config_indexes[i]);
    }
}

/* An entry kept to compare across the reopen. */
struct kept {
    struct core_entry e;
    uint8_t *copy; /* client id, primary and data */
};

static void keep(struct kept *k, const struct core_entry *e)
{
    size_t clen = strlen(e->client_id) + 1, plen = strlen(e->primary) + 1;
    k->copy = malloc(clen + plen + e->len + 1);
    FUZZ_CHECK(k->copy != NULL, "out of memory");
    memcpy(k->copy, e->client_id, clen);
    memcpy(k->copy + clen, e->primary, plen);
    if (e->len > 0) {
        memcpy(k->copy + clen + plen, e->data, e->len);
    }
    k->e = *e;
    k->e.client_id = (const char *)k->copy;
    k->e.primary = (const char *)k->copy + clen;
    k->e.data = k->copy + clen + plen;
}

static bool same_entry(const struct core_entry *a, const struct core_entry *b)
{
    return a->index == b->index && a->epoch == b->epoch && a->type == b->type &&
           a->time_ms == b->time_ms && strcmp(a->client_id, b->client_id) == 0 &&
           strcmp(a->primary, b->primary) == 0 && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Reads first..last in slices, checks each entry against the summary, and
 * keeps up to MAX_KEPT of them. Returns how many were read before a
 * -EILSEQ (which only damage behind a sound footer may cause). */
static uint64_t read_log(struct wal *w, const struct core_recovered *c, uint64_t first,
                         bool may_fail, struct kept *kept, size_t *n_kept)
{
    uint64_t next = first;
    size_t run = 0, config = 0;
    *n_kept = 0;
    while (next <= c->last_index) {
        const struct core_entry *e;
        size_t n;
        int rc = wal_read(w, next, c->last_index, 700, false, &e, &n);
        if (rc == -EILSEQ && may_fail) {
            FUZZ_CHECK(wal_last_error(w)[0] != '\0', "-EILSEQ without a reason");
            return next - first;
        }
        FUZZ_CHECK(rc == 0 && n >= 1, "wal_read(%llu..%llu) = %d: %s", (unsigned long long)next,
                   (unsigned long long)c->last_index, rc, wal_last_error(w));
        size_t kept_from = *n_kept;
        for (size_t i = 0; i < n; i++) {
            uint64_t index = next + i;
            while (run + 1 < c->n_runs && c->runs[run + 1].first_index <= index) {
                run++;
            }
            FUZZ_CHECK(e[i].index == index, "read entry %llu where %llu was asked",
                       (unsigned long long)e[i].index, (unsigned long long)index);
            FUZZ_CHECK(e[i].epoch == c->runs[run].epoch, "entry %llu of epoch %llu, runs say %llu",
                       (unsigned long long)index, (unsigned long long)e[i].epoch,
                       (unsigned long long)c->runs[run].epoch);
            bool is_config = config < c->n_config && c->config_indexes[config] == index;
            FUZZ_CHECK(is_config == (e[i].type == CORE_ENTRY_CONFIG),
                       "entry %llu of type %u, config list disagrees", (unsigned long long)index,
                       (unsigned)e[i].type);
            config += is_config;
            FUZZ_CHECK(e[i].client_id != NULL && e[i].primary != NULL && e[i].data != NULL,
                       "entry %llu has a NULL field", (unsigned long long)index);
            if (*n_kept < MAX_KEPT) {
                keep(&kept[(*n_kept)++], &e[i]);
            }
        }
        /* The same entries without their data. */
        const struct core_entry *m;
        size_t k;
        rc = wal_read(w, next, next + n - 1, SIZE_MAX, true, &m, &k);
        FUZZ_CHECK(rc == 0 && k == n, "meta-only read of %llu.. = %d, %zu entries",
                   (unsigned long long)next, rc, k);
        for (size_t i = 0; i < k; i++) {
            FUZZ_CHECK(m[i].data == NULL, "a meta-only read lent data");
            if (kept_from + i < *n_kept) {
                const struct core_entry *full = &kept[kept_from + i].e;
                FUZZ_CHECK(m[i].index == full->index && m[i].epoch == full->epoch &&
                               m[i].type == full->type && m[i].len == full->len &&
                               strcmp(m[i].client_id, full->client_id) == 0 &&
                               strcmp(m[i].primary, full->primary) == 0,
                           "meta-only read of %llu differs", (unsigned long long)m[i].index);
            }
        }
        next += n;
    }
    return next - first;
}

static void free_kept(struct kept *kept, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kept[i].copy);
    }
}

/* Splits the input into files; returns how many. */
static void take_file(struct input_file *f, const uint8_t *p, size_t size, bool fix)
{
    f->data = malloc(size + 1);
    FUZZ_CHECK(f->data != NULL, "out of memory");
    if (size > 0) {
        memcpy(f->data, p, size);
    }
    f->size = size;
    if (fix) {
        repair(f->data, size);
    }
}

static size_t lay_out(const uint8_t *data, size_t size, const char *dir, struct input_file *files,
                      bool *legacy)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = in_u8(&in);
    bool fix = (mode / 3) % 2 == 1;
    mode %= 3;
    *legacy = mode == 0;
    if (mode == 0) {
        snprintf(files[0].path, sizeof(files[0].path), "%s/wal.log", dir);
        take_file(&files[0], in.p, in.left, fix);
        return 1;
    }
    snprintf(files[0].path, sizeof(files[0].path), "%s/wal-0000000000000001.seg", dir);
    if (mode == 1) {
        take_file(&files[0], in.p, in.left, fix);
        return 1;
    }
    size_t split = in_u16(&in);
    if (split > in.left) {
        split = in.left;
    }
    take_file(&files[0], in.p, split, fix);
    snprintf(files[1].path, sizeof(files[1].path), "%s/wal-0000000000000002.seg", dir);
    take_file(&files[1], in.p + split, in.left - split, fix);
    return 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_base();
    fuzz_cleanup = remove_run_dir;
    char dir[300];
    snprintf(dir, sizeof(dir), "%s", base_dir);
    FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
    snprintf(run_dir, sizeof(run_dir), "%s", dir);
    struct input_file files[2];
    bool legacy;
    size_t n_files = lay_out(data, size, dir, files, &legacy);
    for (size_t i = 0; i < n_files; i++) {
        write_file(files[i].path, files[i].data, files[i].size);
    }

    struct wal_options o = {.segment_bytes = SEGMENT_BYTES};
    struct wal *w = NULL;
    struct wal_recovered rec;
    char err[512];
    memset(err, 0x55, sizeof(err));
    int rc = wal_open(dir, &o, &w, &rec, err, sizeof(err));
    if (rc < 0) {
        FUZZ_CHECK(w == NULL, "refused, yet returned a log");
        FUZZ_CHECK(bounded(err, sizeof(err)) && err[0] != '\0', "refused without a reason");
        FUZZ_CHECK(rec.core.last_index == 0 && rec.storage == NULL,
                   "refused, yet recovered something");
        check_files(files, n_files, legacy, dir, false);
        goto done;
    }
    FUZZ_CHECK(rc == 0 && w != NULL, "wal_open returned %d", rc);
    check_files(files, n_files, legacy, dir, true);
    check_hard_state(&rec.core.hs);
    uint64_t first = wal_first_index(w);
    check_summary(&rec.core, first);
    static struct kept kept[MAX_KEPT], kept2[MAX_KEPT];
    size_t n_kept, n_kept2;
    uint64_t readable = read_log(w, &rec.core, first, n_files == 2, kept, &n_kept);
    bool whole = readable == rec.core.last_index + 1 - first;

    /* Append one entry in the current epoch, sync, reopen. */
    uint64_t last = rec.core.last_index;
    uint64_t last_epoch = rec.core.n_runs ? rec.core.runs[rec.core.n_runs - 1].epoch : 0;
    struct core_hard_state hs = rec.core.hs;
    if (hs.epoch == 0 || hs.epoch < last_epoch) {
        hs.epoch = last_epoch ? last_epoch : 1;
        FUZZ_CHECK(wal_append_state(w, &hs) == 0, "appending a state record failed");
    }
    static const uint8_t payload[] = "fuzz entry";
    struct core_entry e = {
        .index = last + 1,
        .epoch = hs.epoch,
        .type = CORE_ENTRY_DATA,
        .time_ms = -7,
        .client_id = "fuzz-client",
        .primary = "r1",
        .data = payload,
        .len = sizeof(payload) - 1,
    };
    FUZZ_CHECK(wal_append_entries(w, 0, &e, 1) == 0, "appending entry %llu failed",
               (unsigned long long)e.index);
    FUZZ_CHECK(wal_pending(w), "nothing pending after an append");
    FUZZ_CHECK(wal_sync(w) == 0, "wal_sync failed: %s", wal_last_error(w));
    wal_close(w);
    w = NULL;

    struct wal_recovered rec2;
    rc = wal_open(dir, &o, &w, &rec2, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "reopening after an append failed: %s", err);
    check_hard_state(&rec2.core.hs);
    FUZZ_CHECK(wal_first_index(w) == first, "first index %llu, was %llu",
               (unsigned long long)wal_first_index(w), (unsigned long long)first);
    check_summary(&rec2.core, first);
    FUZZ_CHECK(rec2.core.last_index == last + 1, "last index %llu after appending to %llu",
               (unsigned long long)rec2.core.last_index, (unsigned long long)last);
    FUZZ_CHECK(rec2.core.n_config == rec.core.n_config, "config indexes changed");
    uint64_t readable2 = read_log(w, &rec2.core, first, n_files == 2, kept2, &n_kept2);
    FUZZ_CHECK(!whole || readable2 == last + 2 - first, "%llu entries readable, were all",
               (unsigned long long)readable2);
    for (size_t i = 0; i < n_kept && i < n_kept2; i++) {
        FUZZ_CHECK(same_entry(&kept[i].e, &kept2[i].e), "entry %llu changed",
                   (unsigned long long)kept[i].e.index);
    }
    if (whole && n_kept2 < MAX_KEPT) {
        FUZZ_CHECK(same_entry(&kept2[n_kept2 - 1].e, &e), "the appended entry came back wrong");
    }
    FUZZ_CHECK(rec2.core.hs.epoch == hs.epoch &&
                   strcmp(rec2.core.hs.voted_for, hs.voted_for) == 0 &&
                   rec2.core.hs.n_bootstrap == hs.n_bootstrap,
               "the hard state changed across the reopen");
    for (unsigned i = 0; i < hs.n_bootstrap; i++) {
        FUZZ_CHECK(strcmp(rec2.core.hs.bootstrap[i], hs.bootstrap[i]) == 0,
                   "bootstrap id %u changed", i);
    }
    FUZZ_CHECK(memcmp(&rec2.core.checkpoint, &rec.core.checkpoint, sizeof(rec.core.checkpoint)) ==
                   0,
               "the checkpoint changed across the reopen");
    free_kept(kept, n_kept);
    free_kept(kept2, n_kept2);
    wal_recovered_free(&rec2);
    wal_close(w);
    wal_recovered_free(&rec);

done:
    for (size_t i = 0; i < n_files; i++) {
        free(files[i].data);
    }
    remove_files(dir);
    FUZZ_CHECK(rmdir(dir) == 0, "cannot remove %s: %s", dir, strerror(errno));
    run_dir[0] = '\0';
    return 0;
}
