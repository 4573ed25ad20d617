/*
 * replica/core/sessions.c — client sessions: which client id wrote which
 * entry, so that a retried request is applied once (dissertation 6.3), and
 * who waits for an entry to commit.
 *
 * The table is bounded. It holds the client ids of the newest DATA entries,
 * at most session_max of them and none older (by the primary's timestamp in
 * the entries) than session_ttl_ms before the newest: expiry follows from
 * the log alone, so every replica that holds the same log forgets the same
 * ids, in log order. The horizon is the index from which on every DATA
 * entry's id is still known.
 *
 * An id that is not in the table is either new, or was used for an entry
 * that has expired: the table cannot tell. The request can: a client sends
 * `seen_index`, a log index it had seen before it first sent the request.
 * The original, if it was ever appended, lies after it; so if the horizon
 * is not beyond seen_index + 1, the table covers every place it could be,
 * and absence proves it new. Otherwise the request is refused as expired,
 * never appended a second time. A request that cannot say
 * (CORE_SEEN_UNKNOWN) is taken as new.
 */
#include "internal.h"
#include "validate.h"

#include <stdio.h> /* snprintf only */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ========================================================================
 * The table
 * ====================================================================== */

static struct session *ring_at(const struct core *c, size_t i)
{
    return &c->sessions[(c->sessions_head + i) % c->sessions_cap];
}

const struct session *session_at(const struct core *c, size_t i)
{
    return ring_at(c, i);
}

/* Every remembered id up to index gets its data's hash (those rebuilt at
 * start have none yet): a snapshot must carry them. 0, or storage's error. */
int sessions_hash_upto(struct core *c, uint64_t index)
{
    for (size_t i = 0; i < c->sessions_len && ring_at(c, i)->index <= index; i++) {
        struct session *s = ring_at(c, i);
        if (!s->hashed) {
            const struct core_entry *e = log_entry(c, s->index);
            if (e == NULL) {
                return -EIO;
            }
            s->data_hash = session_hash(e->data, e->len);
            s->hashed = true;
        }
    }
    return 0;
}

static void forget(struct core *c, struct session *s)
{
    /* A later use of the same id (after this one expired) owns the entry. */
    if (c->ids_indexed) {
        idmap_del_if(&c->client_ids, s->key, s->index);
    }
    pool_free(s->key);
    s->key = NULL;
}

static void forget_oldest(struct core *c)
{
    struct session *s = ring_at(c, 0);
    c->session_horizon = s->index + 1;
    forget(c, s);
    c->sessions_head = (c->sessions_head + 1) % c->sessions_cap;
    c->sessions_len--;
}

static int ring_grow(struct core *c)
{
    size_t cap = c->sessions_cap ? c->sessions_cap * 2 : 256;
    struct session *ring = malloc(cap * sizeof(*ring));
    if (ring == NULL) {
        return -1;
    }
    for (size_t i = 0; i < c->sessions_len; i++) {
        ring[i] = *ring_at(c, i);
    }
    free(c->sessions);
    c->sessions = ring;
    c->sessions_cap = cap;
    c->sessions_head = 0;
    return 0;
}

uint64_t session_hash(const uint8_t *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A DATA entry (s->key: its client id, copied). Out of memory, the id is
 * not remembered, and the horizon moves past it: a retry is then refused
 * as expired rather than applied twice. */
void session_note(struct core *c, const struct session *s)
{
    size_t key_len = strlen(s->key) + 1;
    char *key = pool_alloc(&c->key_pool, key_len);
    if (key != NULL) {
        memcpy(key, s->key, key_len);
    }
    if (key == NULL || (c->sessions_len == c->sessions_cap && ring_grow(c) != 0) ||
        /* An expired use of the same id may still be in the ring: the map
         * now borrows the new copy, and forgetting the old one leaves it. */
        (c->ids_indexed && idmap_put(&c->client_ids, key, s->index) != 0)) {
        pool_free(key);
        while (c->sessions_len > 0) {
            forget_oldest(c);
        }
        c->session_horizon = s->index + 1;
        return;
    }
    struct session *slot = ring_at(c, c->sessions_len++);
    *slot = *s;
    slot->key = key;
    while (c->sessions_len > c->o.session_max) {
        forget_oldest(c);
    }
    while (c->o.session_ttl_ms > 0 && c->sessions_len > 1 &&
           ring_at(c, 0)->time_ms < s->time_ms - (int64_t)c->o.session_ttl_ms) {
        forget_oldest(c);
    }
}

/* The map from id to entry, as session_note would have built it: the ring
 * in order, a later use of an id replacing an earlier one. Out of memory,
 * every id is forgotten (a retry is then refused as expired, never applied
 * twice) and -1 returned. */
static int ids_index(struct core *c)
{
    if (c->ids_indexed) {
        return 0;
    }
    for (size_t i = 0; i < c->sessions_len; i++) {
        struct session *s = ring_at(c, i);
        if (idmap_put(&c->client_ids, s->key, s->index) != 0) {
            idmap_free(&c->client_ids);
            sessions_reset(c, c->last + 1);
            return -1;
        }
    }
    c->ids_indexed = true;
    return 0;
}

void sessions_unindex(struct core *c)
{
    idmap_free(&c->client_ids);
    c->ids_indexed = false;
}

/* The session of the entry at index (the ring is in index order). */
static struct session *session_find(const struct core *c, uint64_t index)
{
    size_t lo = 0, hi = c->sessions_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct session *s = ring_at(c, mid);
        if (s->index == index) {
            return s;
        }
        if (s->index < index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Entries >= from left the log: so do their ids. The horizon stays. */
void sessions_truncate(struct core *c, uint64_t from)
{
    while (c->sessions_len > 0 && ring_at(c, c->sessions_len - 1)->index >= from) {
        forget(c, ring_at(c, c->sessions_len - 1));
        c->sessions_len--;
    }
}

/* At start: the table as the snapshot (if any) and the log's newest
 * entries make it. Entries before the first one read that no snapshot
 * covers are not known, so the horizon starts there. */
int sessions_rebuild(struct core *c)
{
    uint64_t span = (uint64_t)c->o.session_max + c->o.session_max / 4 + 64;
    uint64_t from = c->last > span ? c->last - span + 1 : 1;
    if (from <= c->snap_index) {
        from = c->snap_index + 1; /* the snapshot's sessions cover the rest */
    } else {
        sessions_reset(c, from);
    }
    for (uint64_t i = from; i <= c->last;) {
        const struct core_entry *es;
        size_t n;
        /* Without data: a restart must not read the newest entries' data
         * (with 4 KiB entries, hundreds of MB); a retry hashes its own. */
        int rc = log_read(c, i, c->last, 64u << 20, true, &es, &n);
        if (rc < 0) {
            return rc;
        }
        for (size_t k = 0; k < n; k++) {
            if (es[k].type == CORE_ENTRY_DATA && es[k].client_id[0] != '\0') {
                struct session s = {.index = es[k].index,
                                    .time_ms = es[k].time_ms,
                                    .key = (char *)es[k].client_id,
                                    .data_len = es[k].len,
                                    .epoch = es[k].epoch,
                                    .hashed = false};
                session_note(c, &s);
            }
        }
        i += n;
    }
    return 0;
}

/* Forget every id: a snapshot's sessions come next. */
void sessions_reset(struct core *c, uint64_t horizon)
{
    while (c->sessions_len > 0) {
        forget(c, ring_at(c, --c->sessions_len));
    }
    c->sessions_head = 0;
    c->session_horizon = horizon;
}

void sessions_free(struct core *c)
{
    while (c->sessions_len > 0) {
        forget(c, ring_at(c, --c->sessions_len));
    }
    free(c->sessions);
    c->sessions = NULL;
    c->sessions_cap = 0;
    sessions_unindex(c);
    pool_destroy(&c->key_pool);
}

/* ========================================================================
 * Requests
 * ====================================================================== */

static int add_pending(struct core *c, uint64_t token, uint64_t index)
{
    if (c->n_pending == c->cap_pending) {
        size_t cap = c->cap_pending ? c->cap_pending * 2 : 64;
        struct pending_reply *p = realloc(c->pending, cap * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        c->pending = p;
        c->cap_pending = cap;
    }
    c->pending[c->n_pending].token = token;
    c->pending[c->n_pending].index = index;
    c->n_pending++;
    return 0;
}

/* A retry of the request at `index`: the same data, or a conflict. */
static void answer_retry(struct core *c, uint64_t token, uint64_t index, const uint8_t *data,
                         size_t len)
{
    struct session *s = session_find(c, index);
    const struct core_entry *e = index >= c->first_index ? log_entry(c, index) : NULL;
    const char *primary = e ? e->primary : "";
    if (s != NULL && !s->hashed) {
        if (e == NULL) {
            out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id,
                      "cannot read the log to check this retry; try again");
            return;
        }
        s->data_hash = session_hash(e->data, e->len);
        s->hashed = true;
    }
    uint64_t epoch = s ? s->epoch : epoch_at(c, index);
    /* A retry must carry what the id was first used for: answering with
     * the original index for other data would claim a write that never
     * happened. */
    if (s == NULL || s->data_len != len || s->data_hash != session_hash(data, len)) {
        char why[96];
        snprintf(why, sizeof(why), "client id already used for other data, at index %llu",
                 (unsigned long long)index);
        out_reply(c, token, CORE_REPLY_CONFLICT, index, epoch, primary, why);
        return;
    }
    if (index <= c->commit) {
        out_reply(c, token, CORE_REPLY_OK, index, epoch, primary, "duplicate");
    } else if (add_pending(c, token, index) != 0) {
        out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
    }
}

/* A primary's request: appended once per client id, answered at commit.
 * The caller checked the role and quorum. */
void session_request(struct core *c, uint64_t token, const char *client_id, const uint8_t *data,
                     size_t len, uint64_t seen_index)
{
    if (client_id == NULL || !validate_client_id(client_id, strlen(client_id))) {
        out_reply(c, token, CORE_REPLY_REJECTED, 0, c->hs.epoch, c->id,
                  "client id must be 1 to 127 bytes of UTF-8 without control characters");
        return;
    }
    if (len > c->o.max_request_bytes) {
        out_reply(c, token, CORE_REPLY_REJECTED, 0, c->hs.epoch, c->id, "request too large");
        return;
    }
    if (ids_index(c) != 0) {
        out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
        return;
    }
    uint64_t index = idmap_get(&c->client_ids, client_id);
    if (index != 0) {
        answer_retry(c, token, index, data, len);
        return;
    }
    if (seen_index != CORE_SEEN_UNKNOWN && seen_index + 1 < c->session_horizon) {
        char why[96];
        snprintf(why, sizeof(why), "session expired: ids before index %llu are forgotten",
                 (unsigned long long)c->session_horizon);
        out_reply(c, token, CORE_REPLY_EXPIRED, c->session_horizon, c->hs.epoch, c->id, why);
        return;
    }
    log_append_local(c, CORE_ENTRY_DATA, client_id, data, len);
    index = last_index(c);
    if (idmap_get(&c->client_ids, client_id) != index) {
        out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
        return;
    }
    if (add_pending(c, token, index) != 0) {
        out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
    }
}

/* Answer every waiting request whose entry is now committed. */
void sessions_answer_committed(struct core *c)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->n_pending; i++) {
        struct pending_reply *pr = &c->pending[i];
        if (pr->index <= c->commit) {
            const struct core_entry *e = log_entry(c, pr->index);
            out_reply(c, pr->token, CORE_REPLY_OK, pr->index, epoch_at(c, pr->index),
                      e ? e->primary : "", NULL);
        } else {
            c->pending[kept++] = *pr;
        }
    }
    c->n_pending = kept;
}

void sessions_fail(struct core *c, enum core_reply_status st)
{
    for (size_t i = 0; i < c->n_pending; i++) {
        out_reply(c, c->pending[i].token, st, 0, c->hs.epoch, c->primary,
                  "primary changed before commit; retry with the same id");
    }
    c->n_pending = 0;
}
