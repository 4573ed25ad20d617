/*
 * tests/fuzz/fuzz_wal.c — recovery of the durable log (replica/storage/wal.c)
 * from an arbitrary file.
 *
 * The input is written as <fresh temp dir>/wal.log and opened. wal_open
 * must either refuse, with a reason and without touching the file, or
 * recover a log the core can start from: entries with consecutive indexes
 * from 1, epochs that never go down and never exceed the hard state's,
 * known entry types, and a sane hard state (at most LIMIT_MEMBERS bootstrap
 * ids, every id valid, counters within 2^53 - 1). What it recovers must be
 * what it keeps: after appending one entry, syncing and reopening, the same
 * log plus that entry comes back. The temp dir is removed after every run.
 */
#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "storage/wal.h"
#include "validate.h"

static char base_dir[256];
static char run_dir[300]; /* this run's temp dir, "" between runs */

/* Leaves nothing behind, also when a check fails. */
static void remove_run_dir(void)
{
    if (run_dir[0] == '\0') {
        return;
    }
    char path[340];
    snprintf(path, sizeof(path), "%s/wal.log", run_dir);
    unlink(path);
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

static uint8_t *read_whole(const char *path, size_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
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

/* What recovery hands the core must be a state the core could have written. */
static void check_recovered(const struct wal_recovered *rec)
{
    const struct core_hard_state *hs = &rec->hs;
    FUZZ_CHECK(hs->epoch <= LIMIT_COUNTER_MAX, "recovered epoch %llu",
               (unsigned long long)hs->epoch);
    FUZZ_CHECK(bounded(hs->voted_for, sizeof(hs->voted_for)), "voted_for not terminated");
    FUZZ_CHECK(hs->voted_for[0] == '\0' || validate_id(hs->voted_for),
               "recovered a vote for \"%s\", which fails validate_id", hs->voted_for);
    FUZZ_CHECK(hs->n_bootstrap <= LIMIT_MEMBERS, "recovered %u bootstrap ids", hs->n_bootstrap);
    for (unsigned i = 0; i < hs->n_bootstrap; i++) {
        FUZZ_CHECK(bounded(hs->bootstrap[i], sizeof(hs->bootstrap[i])), "bootstrap id too long");
        FUZZ_CHECK(validate_id(hs->bootstrap[i]),
                   "recovered bootstrap id \"%s\", which fails validate_id", hs->bootstrap[i]);
    }
    FUZZ_CHECK(rec->n_entries == 0 || rec->entries != NULL, "entries missing");
    uint64_t prev_epoch = 0;
    for (size_t i = 0; i < rec->n_entries; i++) {
        const struct core_entry *e = &rec->entries[i];
        FUZZ_CHECK(e->index == i + 1, "entry %zu has index %llu", i, (unsigned long long)e->index);
        FUZZ_CHECK(e->epoch >= prev_epoch,
                   "recovered entry %llu of epoch %llu after one of epoch %llu: epochs go down",
                   (unsigned long long)e->index, (unsigned long long)e->epoch,
                   (unsigned long long)prev_epoch);
        prev_epoch = e->epoch;
        FUZZ_CHECK((unsigned)e->type <= CORE_ENTRY_CONFIG, "entry of type %u", (unsigned)e->type);
        FUZZ_CHECK(e->client_id != NULL && e->primary != NULL && e->data != NULL,
                   "entry %zu has a NULL field", i);
        /* Touch every byte: ASan checks they are really there. */
        volatile uint8_t sum = 0;
        for (size_t k = 0; k < e->len; k++) {
            sum = (uint8_t)(sum + e->data[k]);
        }
        (void)strlen(e->client_id);
        (void)strlen(e->primary);
    }
    /* An entry's epoch above the hard state's is never written (the state
     * record always goes first), but the log does not refuse it on reading:
     * only what would make the core's own log go back is refused. */
    (void)hs;
}

static bool same_entry(const struct core_entry *a, const struct core_entry *b)
{
    return a->index == b->index && a->epoch == b->epoch && a->type == b->type &&
           a->time_ms == b->time_ms && strcmp(a->client_id, b->client_id) == 0 &&
           strcmp(a->primary, b->primary) == 0 && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_base();
    fuzz_cleanup = remove_run_dir;
    char dir[300], path[340];
    snprintf(dir, sizeof(dir), "%s", base_dir);
    FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
    snprintf(run_dir, sizeof(run_dir), "%s", dir);
    snprintf(path, sizeof(path), "%s/wal.log", dir);
    write_file(path, data, size);

    struct wal *w = NULL;
    struct wal_recovered rec;
    char err[512];
    memset(err, 0x55, sizeof(err));
    int rc = wal_open(dir, &w, &rec, err, sizeof(err));
    if (rc < 0) {
        FUZZ_CHECK(w == NULL, "refused, yet returned a log");
        FUZZ_CHECK(bounded(err, sizeof(err)) && err[0] != '\0', "refused without a reason");
        FUZZ_CHECK(rec.n_entries == 0 && rec.storage == NULL, "refused, yet recovered entries");
        size_t after_len;
        uint8_t *after = read_whole(path, &after_len);
        FUZZ_CHECK(after_len == size && (size == 0 || memcmp(after, data, size) == 0),
                   "refusing to open changed the file (%zu bytes, was %zu)", after_len, size);
        free(after);
        goto done;
    }
    FUZZ_CHECK(rc == 0 && w != NULL, "wal_open returned %d", rc);
    check_recovered(&rec);
    FUZZ_CHECK(wal_size(w) <= size, "log of %llu bytes from a file of %zu",
               (unsigned long long)wal_size(w), size);
    {
        size_t now_len;
        uint8_t *now = read_whole(path, &now_len);
        FUZZ_CHECK(now_len == wal_size(w), "file holds %zu bytes, wal_size says %llu", now_len,
                   (unsigned long long)wal_size(w));
        FUZZ_CHECK(now_len == 0 || memcmp(now, data, now_len) == 0,
                   "recovery changed bytes it kept");
        free(now);
    }

    /* Append one entry in the current epoch, sync, reopen. */
    uint64_t last_epoch = rec.n_entries ? rec.entries[rec.n_entries - 1].epoch : 0;
    struct core_hard_state hs = rec.hs;
    bool new_state = hs.epoch == 0 || hs.epoch < last_epoch;
    if (new_state) {
        hs.epoch = last_epoch ? last_epoch : 1;
        FUZZ_CHECK(wal_append_state(w, &hs) == 0, "appending a state record failed");
    }
    static const uint8_t payload[] = "fuzz entry";
    struct core_entry e = {
        .index = rec.n_entries + 1,
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
    FUZZ_CHECK(wal_sync(w) == 0, "wal_sync failed");
    wal_close(w);
    w = NULL;

    struct wal_recovered rec2;
    rc = wal_open(dir, &w, &rec2, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "reopening after an append failed: %s", err);
    check_recovered(&rec2);
    FUZZ_CHECK(rec2.n_entries == rec.n_entries + 1, "%zu entries after appending to %zu",
               rec2.n_entries, rec.n_entries);
    for (size_t i = 0; i < rec.n_entries; i++) {
        FUZZ_CHECK(same_entry(&rec.entries[i], &rec2.entries[i]), "entry %zu changed", i + 1);
    }
    FUZZ_CHECK(same_entry(&rec2.entries[rec.n_entries], &e), "the appended entry came back wrong");
    FUZZ_CHECK(memcmp(&rec2.hs, &hs, sizeof(hs)) == 0 ||
                   (rec2.hs.epoch == hs.epoch && strcmp(rec2.hs.voted_for, hs.voted_for) == 0 &&
                    rec2.hs.n_bootstrap == hs.n_bootstrap),
               "the hard state changed across the reopen");
    for (unsigned i = 0; i < hs.n_bootstrap; i++) {
        FUZZ_CHECK(strcmp(rec2.hs.bootstrap[i], hs.bootstrap[i]) == 0, "bootstrap id %u changed",
                   i);
    }
    wal_recovered_free(&rec2);
    wal_close(w);
    wal_recovered_free(&rec);

done:
    unlink(path);
    FUZZ_CHECK(rmdir(dir) == 0, "cannot remove %s: %s", dir, strerror(errno));
    run_dir[0] = '\0';
    return 0;
}
