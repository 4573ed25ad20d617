/*
 * replica/core/log.c — the log as the core sees it: every entry's epoch
 * (as runs), the indexes of CONFIG entries, and a bounded cache of recent
 * entries. Older entries live only in storage and are read back through the
 * adapter's core_store when an Append, a duplicate check or a count needs
 * them.
 *
 * The cache holds a contiguous range cache_first..last. Everything storage
 * has not yet made durable is always in it (storage can only read back what
 * it synced); durable entries leave from the front once the cache is over
 * its budget. Entries handed out (an update's entries, an Append queued in
 * the outbox) point into the cache, so the cache is only trimmed at the
 * start of an input with an empty outbox (log_trim), when nothing lent is
 * still in use.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bytes an entry costs in the cache, besides its data and strings. */
#define ENTRY_OVERHEAD (sizeof(struct core_entry) + 32)

/* ========================================================================
 * Epochs and configuration entries
 * ====================================================================== */

uint64_t last_index(const struct core *c)
{
    return c->last;
}

uint64_t epoch_at(const struct core *c, uint64_t index)
{
    if (index != 0 && index == c->snap_index) {
        return c->snap_epoch; /* known even when the entry itself is gone */
    }
    if (index == 0 || index > c->last || c->n_runs == 0 || index < c->runs[0].first_index ||
        index < c->first_index) {
        return 0;
    }
    /* Most questions are about the newest epoch. */
    size_t hi = c->n_runs - 1;
    if (c->runs[hi].first_index <= index) {
        return c->runs[hi].epoch;
    }
    size_t lo = 0; /* runs[lo].first_index <= index < runs[hi].first_index */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->runs[mid].first_index <= index) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return c->runs[lo].epoch;
}

uint64_t last_epoch(const struct core *c)
{
    return epoch_at(c, last_index(c));
}

static int grow_array(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return 0;
    }
    size_t want = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, want * size);
    if (p == NULL) {
        return -1;
    }
    *items = p;
    *cap = want;
    return 0;
}

static int runs_note(struct core *c, uint64_t index, uint64_t epoch)
{
    if (c->n_runs > 0 && c->runs[c->n_runs - 1].epoch == epoch) {
        return 0;
    }
    if (grow_array((void **)&c->runs, &c->cap_runs, c->n_runs, sizeof(*c->runs)) != 0) {
        return -1;
    }
    c->runs[c->n_runs++] = (struct core_epoch_run){index, epoch};
    return 0;
}

static int config_note(struct core *c, uint64_t index)
{
    if (grow_array((void **)&c->cfg_entries, &c->cap_cfg_entries, c->n_cfg_entries,
                   sizeof(*c->cfg_entries)) != 0) {
        return -1;
    }
    c->cfg_entries[c->n_cfg_entries++] = index;
    return 0;
}

/* Recovery hands over the runs and CONFIG indexes storage found. */
int runs_note_at(struct core *c, const struct core_epoch_run *r)
{
    if (c->n_runs > 0 && (r->first_index <= c->runs[c->n_runs - 1].first_index ||
                          r->epoch < c->runs[c->n_runs - 1].epoch)) {
        return -1; /* not ascending: the epochs of a log never go back */
    }
    return runs_note(c, r->first_index, r->epoch);
}

int config_note_at(struct core *c, uint64_t index)
{
    if (c->n_cfg_entries > 0 && index <= c->cfg_entries[c->n_cfg_entries - 1]) {
        return -1;
    }
    return config_note(c, index);
}

/* ========================================================================
 * The cache
 * ====================================================================== */

static size_t entry_cost(const struct core_entry *e)
{
    return ENTRY_OVERHEAD + e->len + strlen(e->client_id) + strlen(e->primary);
}

static struct core_entry *cached(const struct core *c, uint64_t index)
{
    if (index < c->cache_first || index > c->last || c->cache_len == 0) {
        return NULL;
    }
    return &c->cache[index - c->cache_first];
}

/* Copy e into the log at its end; the index must be last_index + 1. */
int log_push(struct core *c, const struct core_entry *e)
{
    if (c->last >= LIMIT_COUNTER_MAX) {
        return -1; /* the wire carries no index past it: the log is full */
    }
    if (grow_array((void **)&c->cache, &c->cache_cap, c->cache_len, sizeof(*c->cache)) != 0) {
        return -1;
    }
    const char *cid = e->client_id ? e->client_id : "";
    const char *prim = e->primary ? e->primary : "";
    size_t lc = strlen(cid) + 1, lp = strlen(prim) + 1;
    char *blob = pool_alloc(&c->entry_pool, lc + lp + e->len + 1);
    if (blob == NULL) {
        return -1;
    }
    memcpy(blob, cid, lc);
    memcpy(blob + lc, prim, lp);
    if (e->len) {
        memcpy(blob + lc + lp, e->data, e->len);
    }
    uint64_t index = c->last + 1;
    if (runs_note(c, index, e->epoch) != 0 ||
        (e->type == CORE_ENTRY_CONFIG && config_note(c, index) != 0)) {
        pool_free(blob);
        return -1;
    }
    if (e->type == CORE_ENTRY_DATA && cid[0] != '\0') {
        /* The data's hash is taken when it is first needed (a retry, a
         * snapshot), from the entry: FNV-1a goes byte by byte, 7 us for
         * each 4 KiB entry here, paid by every replica for every entry
         * for retries that rarely come. */
        struct session s = {.index = index,
                            .time_ms = e->time_ms,
                            .key = (char *)cid,
                            .data_len = e->len,
                            .epoch = e->epoch,
                            .hashed = false};
        session_note(c, &s);
    }
    if (c->cache_len == 0) {
        c->cache_first = index;
    }
    struct core_entry *s = &c->cache[c->cache_len++];
    *s = *e;
    s->index = index;
    s->client_id = blob;
    s->primary = blob + lc;
    s->data = (const uint8_t *)(blob + lc + lp);
    c->cache_bytes += entry_cost(s);
    c->last = index;
    assert(epoch_at(c, c->last) >= epoch_at(c, c->last - 1)); /* epochs never go back */
    return 0;
}

/* Drop entries >= from. Never at or below the commit index. */
void log_truncate(struct core *c, uint64_t from)
{
    assert(from > c->commit);
    if (from > c->last) {
        return;
    }
    out_log_changed(c, from);
    /* Appends queued before this batch's truncation would carry entries
     * that no longer exist; like any message they may be lost. */
    out_drop_appends(c);
    while (c->cache_len > 0 && c->cache_first + c->cache_len - 1 >= from) {
        struct core_entry *s = &c->cache[--c->cache_len];
        c->cache_bytes -= entry_cost(s);
        pool_free((void *)s->client_id);
    }
    sessions_truncate(c, from);
    while (c->n_runs > 0 && c->runs[c->n_runs - 1].first_index >= from) {
        c->n_runs--;
    }
    bool config_lost = false;
    while (c->n_cfg_entries > 0 && c->cfg_entries[c->n_cfg_entries - 1] >= from) {
        c->n_cfg_entries--;
        config_lost = true;
    }
    c->last = from - 1;
    if (c->cache_len == 0) {
        c->cache_first = c->last + 1;
    }
    if (c->durable > c->last) {
        c->durable = c->last;
    }
    if (config_lost) {
        config_reload(c);
    }
}

/* Durable entries leave the front of the cache once it is over budget:
 * down to half the budget at once, so the array moves rarely. Only when
 * nothing handed out can point into it (see the file comment). */
void log_trim(struct core *c)
{
    if (c->o.store.read == NULL || c->cache_bytes <= c->o.cache_bytes || c->out.n_msgs > 0 ||
        c->out.persist_from != 0) {
        return;
    }
    size_t drop = 0;
    while (drop < c->cache_len && c->cache_bytes > c->o.cache_bytes / 2 &&
           c->cache_first + drop <= c->durable) {
        struct core_entry *s = &c->cache[drop++];
        c->cache_bytes -= entry_cost(s);
        pool_free((void *)s->client_id);
    }
    if (drop == 0) {
        return;
    }
    memmove(c->cache, c->cache + drop, (c->cache_len - drop) * sizeof(*c->cache));
    c->cache_len -= drop;
    c->cache_first += drop;
    if (c->cache_cap > 256 && c->cache_len < c->cache_cap / 4) {
        struct core_entry *smaller = realloc(c->cache, c->cache_cap / 2 * sizeof(*c->cache));
        if (smaller != NULL) {
            c->cache = smaller;
            c->cache_cap /= 2;
        }
    }
}

/* The primary appends an entry of its own epoch. */
void log_append_local(struct core *c, enum core_entry_type type, const char *client_id,
                      const uint8_t *data, size_t len)
{
    struct core_entry e = {
        .index = last_index(c) + 1,
        .epoch = c->hs.epoch,
        .type = type,
        .time_ms = c->o.wall_clock ? c->o.wall_clock(c->o.arg) : 0,
        .client_id = client_id,
        .primary = c->id,
        .data = data,
        .len = len,
    };
    if (log_push(c, &e) != 0) {
        return; /* out of memory: the request times out and is retried */
    }
    out_log_changed(c, last_index(c));
    if (type == CORE_ENTRY_CONFIG) {
        config_reload(c);
    }
}

/* Install a snapshot that replaces the whole log: the log is empty and
 * continues after the snapshot's index, which is committed. Storage is
 * told to do the same (the update's snapshot, with reset). */
int log_reset(struct core *c, const uint8_t *data, size_t len)
{
    /* Queued Appends point into the cache that goes now, and log changes
     * not yet handed to storage are superseded: storage resets too. */
    out_drop_appends(c);
    c->out.persist_from = 0;
    if (snap_load(c, data, len, true) != 0) {
        return -1;
    }
    for (size_t i = 0; i < c->cache_len; i++) {
        pool_free((void *)c->cache[i].client_id);
    }
    c->cache_len = 0;
    c->cache_bytes = 0;
    c->n_runs = 0;
    c->n_cfg_entries = 0;
    c->last = c->snap_index;
    c->first_index = c->cache_first = c->last + 1;
    c->commit = c->durable = c->persisted = c->last;
    c->snap_new = true;
    c->snap_reset = true;
    c->snap_drop = c->first_index;
    config_reload(c);
    return 0;
}

void log_free(struct core *c)
{
    for (size_t i = 0; i < c->cache_len; i++) {
        pool_free((void *)c->cache[i].client_id);
    }
    free(c->cache);
    pool_destroy(&c->entry_pool);
    free(c->runs);
    free(c->cfg_entries);
    c->cache = NULL;
    c->runs = NULL;
    c->cfg_entries = NULL;
    c->cache_len = c->n_runs = c->n_cfg_entries = 0;
    c->last = 0;
}

/* ========================================================================
 * Reading entries
 * ====================================================================== */

/* Entries lo.. (at most hi; at least one, then as many as fit in
 * max_bytes of data), contiguous, from the cache or from storage. Lent
 * until the next read or input. 0, or a negative errno. */
int log_read(struct core *c, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
             const struct core_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (lo == 0 || lo > hi || hi > c->last || lo < c->first_index) {
        return -ERANGE; /* outside the log, or dropped by retention */
    }
    if (lo >= c->cache_first && c->cache_len > 0) {
        const struct core_entry *first = cached(c, lo);
        size_t k = 0, bytes = 0;
        while (lo + k <= hi &&
               (k == 0 || bytes + first[k].len + CORE_ENTRY_OVERHEAD <= max_bytes)) {
            bytes += first[k].len + CORE_ENTRY_OVERHEAD;
            k++;
        }
        *out = first;
        *n = k;
        return 0;
    }
    if (c->o.store.read == NULL) {
        return -ERANGE;
    }
    /* Below the cache: storage holds it durably (the cache starts at or
     * below the first entry that is not). */
    if (hi >= c->cache_first) {
        hi = c->cache_first - 1;
    }
    int rc = c->o.store.read(c->o.store.arg, lo, hi, max_bytes, meta_only, out, n);
    if (rc == 0 && (*n == 0 || (*out)[0].index != lo)) {
        rc = -EIO; /* storage answered for other entries than asked */
    }
    if (rc < 0) {
        c->storage_errors++;
        *n = 0;
    }
    return rc;
}

/* One entry, lent until the next read or input; NULL when it cannot be read
 * (outside the log, or storage failed). */
const struct core_entry *log_entry(struct core *c, uint64_t index)
{
    const struct core_entry *e;
    size_t n;
    return log_read(c, index, index, 0, false, &e, &n) == 0 ? e : NULL;
}
