/*
 * replica/core/log.c — the in-memory log, the prefix of it that is durable,
 * and client sessions: which client id wrote which entry, and who waits for
 * an entry to commit.
 */
#include "internal.h"
#include "validate.h"

#include <stdio.h> /* snprintf only */
#include <stdlib.h>
#include <string.h>

/* ========================================================================
 * The log
 * ====================================================================== */

uint64_t last_index(const struct core *c)
{
    return c->n_log;
}

uint64_t epoch_at(const struct core *c, uint64_t index)
{
    return index == 0 || index > c->n_log ? 0 : c->log[index - 1].epoch;
}

uint64_t last_epoch(const struct core *c)
{
    return epoch_at(c, last_index(c));
}

/* Copy e into the log at its end; the index must be last_index + 1. */
int log_push(struct core *c, const struct core_entry *e)
{
    if (c->n_log == c->cap_log) {
        size_t cap = c->cap_log ? c->cap_log * 2 : 256;
        struct core_entry *log = realloc(c->log, cap * sizeof(*log));
        if (log == NULL) {
            return -1;
        }
        c->log = log;
        c->cap_log = cap;
    }
    const char *cid = e->client_id ? e->client_id : "";
    const char *prim = e->primary ? e->primary : "";
    size_t lc = strlen(cid) + 1, lp = strlen(prim) + 1;
    char *blob = malloc(lc + lp + e->len + 1);
    if (blob == NULL) {
        return -1;
    }
    memcpy(blob, cid, lc);
    memcpy(blob + lc, prim, lp);
    if (e->len) {
        memcpy(blob + lc + lp, e->data, e->len);
    }
    struct core_entry *s = &c->log[c->n_log];
    *s = *e;
    s->index = c->n_log + 1;
    s->client_id = blob;
    s->primary = blob + lc;
    s->data = (const uint8_t *)(blob + lc + lp);
    if (e->type == CORE_ENTRY_DATA && cid[0] != '\0' &&
        idmap_put(&c->client_ids, cid, s->index) != 0) {
        free(blob);
        return -1;
    }
    c->n_log++;
    assert(epoch_at(c, c->n_log) >= epoch_at(c, c->n_log - 1)); /* epochs never go back */
    return 0;
}

/* Drop entries >= from. Never at or below the commit index. */
void log_truncate(struct core *c, uint64_t from)
{
    assert(from > c->commit);
    bool config_lost = false;
    if (from <= c->n_log) {
        out_log_changed(c, from);
        /* Appends queued before this batch's truncation would carry entries
         * that no longer exist; like any message they may be lost. */
        out_drop_appends(c);
    }
    while (c->n_log >= from && c->n_log > 0) {
        struct core_entry *s = &c->log[c->n_log - 1];
        if (s->type == CORE_ENTRY_DATA && s->client_id[0] != '\0' &&
            idmap_get(&c->client_ids, s->client_id) == s->index) {
            idmap_del(&c->client_ids, s->client_id);
        }
        config_lost |= s->type == CORE_ENTRY_CONFIG;
        free((void *)s->client_id);
        c->n_log--;
    }
    if (c->durable > c->n_log) {
        c->durable = c->n_log;
    }
    if (config_lost) {
        config_reload(c);
    }
}

void log_free(struct core *c)
{
    for (size_t i = 0; i < c->n_log; i++) {
        free((void *)c->log[i].client_id);
    }
    free(c->log);
    c->log = NULL;
    c->n_log = 0;
    idmap_free(&c->client_ids);
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

/* ========================================================================
 * Client sessions
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

/* A primary's request: appended once per client id, answered at commit.
 * The caller checked the role and quorum. */
void session_request(struct core *c, uint64_t token, const char *client_id, const uint8_t *data,
                     size_t len)
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
    uint64_t index = idmap_get(&c->client_ids, client_id);
    if (index != 0) {
        /* A retry must carry what the id was first used for: answering
         * with the original index for other data would claim a write that
         * never happened. */
        const struct core_entry *e = &c->log[index - 1];
        if (e->len != len || (len > 0 && memcmp(e->data, data, len) != 0)) {
            char why[96];
            snprintf(why, sizeof(why), "client id already used for other data, at index %llu",
                     (unsigned long long)index);
            out_reply(c, token, CORE_REPLY_CONFLICT, index, e->epoch, e->primary, why);
            return;
        }
        if (index <= c->commit) {
            out_reply(c, token, CORE_REPLY_OK, index, e->epoch, e->primary, "duplicate");
            return;
        }
    }
    if (index == 0) {
        log_append_local(c, CORE_ENTRY_DATA, client_id, data, len);
        index = last_index(c);
        if (idmap_get(&c->client_ids, client_id) != index) {
            out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
            return;
        }
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
            const struct core_entry *e = &c->log[pr->index - 1];
            out_reply(c, pr->token, CORE_REPLY_OK, pr->index, e->epoch, e->primary, NULL);
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
