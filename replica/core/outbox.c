/*
 * replica/core/outbox.c — the update: what inputs make necessary is
 * gathered here, handed out by core_ready, carried out in the order the
 * durability rule requires by core_update_apply (the only place that
 * knows the rule), and confirmed durable by core_advance.
 */
#include "internal.h"

#include <stdio.h> /* snprintf only */
#include <stdlib.h>
#include <string.h>

uint64_t rnd(struct core *c, uint64_t bound)
{
    return bound ? c->o.random(c->o.arg) % bound : 0;
}

/* Grow an array of `size`-byte items to hold one more; NULL when out of
 * memory (the output is then lost, as a message on a network may be). */
static void *grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n == *cap) {
        size_t want = *cap ? *cap * 2 : 16;
        void *p = realloc(*items, want * size);
        if (p == NULL) {
            return NULL;
        }
        *items = p;
        *cap = want;
    }
    return (char *)*items + n * size;
}

/* ========================================================================
 * Gathering output
 * ====================================================================== */

/* Entries read back from storage are lent only until the next read: copy
 * them whole (array, strings and data) into one allocation. */
struct core_entry *core_entries_copy(const struct core_entry *es, size_t n)
{
    size_t bytes = n * sizeof(*es);
    for (size_t i = 0; i < n; i++) {
        bytes += strlen(es[i].client_id) + 1 + strlen(es[i].primary) + 1 + es[i].len;
    }
    struct core_entry *copy = malloc(bytes ? bytes : 1);
    if (copy == NULL) {
        return NULL;
    }
    char *p = (char *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        size_t lc = strlen(es[i].client_id) + 1, lp = strlen(es[i].primary) + 1;
        copy[i] = es[i];
        copy[i].client_id = memcpy(p, es[i].client_id, lc);
        p += lc;
        copy[i].primary = memcpy(p, es[i].primary, lp);
        p += lp;
        copy[i].data = (const uint8_t *)p;
        if (es[i].len > 0) {
            memcpy(p, es[i].data, es[i].len);
        }
        p += es[i].len;
    }
    return copy;
}

/* The message's pointers are copied into one allocation the update owns:
 * cached entries shallowly (their strings and data stay in the cache,
 * which is neither trimmed while the outbox holds messages nor truncated
 * without dropping the Appends that point there), entries from storage
 * whole, the bootstrap list whole. */
void out_send(struct core *c, const char *to, const struct core_msg *m)
{
    struct outbox *o = &c->out;
    struct core_out_msg *om = grow((void **)&o->msgs, &o->cap_msgs, o->n_msgs, sizeof(*o->msgs));
    if (om == NULL) {
        return;
    }
    memset(om, 0, sizeof(*om));
    snprintf(om->to, sizeof(om->to), "%s", to);
    om->msg = *m;
    om->msg.from = c->id;
    if (m->type == CORE_MSG_APPEND && m->append.n_entries > 0) {
        const struct core_entry *es = m->append.entries;
        bool in_cache = c->cache_len > 0 && es >= c->cache && es < c->cache + c->cache_len;
        size_t bytes = m->append.n_entries * sizeof(struct core_entry);
        if (in_cache && (om->own = malloc(bytes)) != NULL) {
            memcpy(om->own, es, bytes);
        } else if (!in_cache) {
            om->own = core_entries_copy(es, m->append.n_entries);
        }
        if (om->own == NULL) {
            return;
        }
        om->msg.append.entries = om->own;
    }
    if (m->type == CORE_MSG_SNAPSHOT) {
        /* A later snapshot may replace the core's before this leaves. */
        if ((om->own = malloc(m->snapshot.len ? m->snapshot.len : 1)) == NULL) {
            return;
        }
        memcpy(om->own, m->snapshot.data, m->snapshot.len);
        om->msg.snapshot.data = om->own;
    }
    if (m->type == CORE_MSG_VOTE_REQUEST && m->vote_request.n_bootstrap > 0) {
        unsigned n = m->vote_request.n_bootstrap;
        const char **ptrs = malloc(n * (sizeof(char *) + CORE_ID_MAX));
        if ((om->own = ptrs) == NULL) {
            return;
        }
        char *ids = (char *)(ptrs + n);
        for (unsigned i = 0; i < n; i++) {
            snprintf(ids + i * CORE_ID_MAX, CORE_ID_MAX, "%s", m->vote_request.bootstrap[i]);
            ptrs[i] = ids + i * CORE_ID_MAX;
        }
        om->msg.vote_request.bootstrap = ptrs;
    }
    /* A primary's Appends may leave before its own fsync. */
    om->early = m->type == CORE_MSG_APPEND && c->role == CORE_PRIMARY;
    o->n_msgs++;
}

void out_reply(struct core *c, uint64_t token, enum core_reply_status st, uint64_t index,
               uint64_t epoch, const char *primary, const char *msg)
{
    struct outbox *o = &c->out;
    struct core_out_reply *r =
        grow((void **)&o->replies, &o->cap_replies, o->n_replies, sizeof(*o->replies));
    if (r == NULL) {
        return;
    }
    r->token = token;
    snprintf(r->primary, sizeof(r->primary), "%s", primary ? primary : "");
    snprintf(r->message, sizeof(r->message), "%s", msg ? msg : "");
    r->reply = (struct core_reply){st, index, epoch, NULL, NULL};
    o->n_replies++;
}

void out_event(struct core *c, enum event_type type, const char *subject, uint64_t index,
               const char *detail)
{
    struct outbox *o = &c->out;
    struct core_event *ev =
        grow((void **)&o->events, &o->cap_events, o->n_events, sizeof(*o->events));
    if (ev == NULL) {
        return;
    }
    ev->type = type;
    snprintf(ev->subject, sizeof(ev->subject), "%s", subject ? subject : "");
    ev->epoch = c->hs.epoch;
    ev->index = index;
    snprintf(ev->detail, sizeof(ev->detail), "%s", detail ? detail : "");
    o->n_events++;
}

void out_state(struct core *c)
{
    c->out.has_state = true;
}

void out_log_changed(struct core *c, uint64_t from)
{
    if (c->out.persist_from == 0 || from < c->out.persist_from) {
        c->out.persist_from = from;
    }
}

void out_drop_appends(struct core *c)
{
    struct outbox *o = &c->out;
    size_t kept = 0;
    for (size_t i = 0; i < o->n_msgs; i++) {
        if (o->msgs[i].msg.type == CORE_MSG_APPEND) {
            free(o->msgs[i].own);
        } else {
            o->msgs[kept++] = o->msgs[i];
        }
    }
    o->n_msgs = kept;
}

void outbox_free(struct core *c)
{
    struct core_update u = {.msgs = c->out.msgs,
                            .n_msgs = c->out.n_msgs,
                            .replies = c->out.replies,
                            .events = c->out.events};
    core_update_free(&u);
    memset(&c->out, 0, sizeof(c->out));
}

/* ========================================================================
 * Handing out, applying, confirming
 * ====================================================================== */

bool core_ready(struct core *c, struct core_update *u)
{
    struct outbox *o = &c->out;
    memset(u, 0, sizeof(*u));
    if (!o->has_state && o->persist_from == 0 && o->n_msgs == 0 && o->n_replies == 0 &&
        o->n_events == 0 && !c->snap_new) {
        return false;
    }
    if (c->snap_new) {
        u->has_snapshot = true;
        u->snapshot_reset = c->snap_reset;
        u->snapshot_index = c->snap_index;
        u->snapshot_epoch = c->snap_epoch;
        u->snapshot_data = c->snap;
        u->snapshot_len = c->snap_len;
        u->drop_before = c->snap_drop;
        c->snap_new = false;
    }
    /* A checkpoint rides along with whatever is persisted anyway. */
    if ((o->has_state || o->persist_from != 0 || u->has_snapshot) && c->commit > c->checkpointed) {
        u->has_checkpoint = true;
        u->checkpoint = (struct core_checkpoint){c->commit, c->processed, c->synced};
        c->checkpointed = c->commit;
    }
    u->has_state = o->has_state;
    u->hs = c->hs;
    if (o->persist_from != 0) {
        uint64_t from = o->persist_from;
        u->has_entries = true;
        u->truncate_from = from <= c->persisted ? from : 0;
        assert(from > last_index(c) || (from >= c->cache_first && c->cache_len > 0));
        u->entries = from <= last_index(c) ? &c->cache[from - c->cache_first] : NULL;
        u->n_entries = from <= last_index(c) ? last_index(c) - from + 1 : 0;
        u->durable_index = last_index(c);
        u->durable_epoch = last_epoch(c);
        c->persisted = last_index(c);
    }
    /* The arrays move to the update; the outbox starts empty. */
    u->msgs = o->msgs;
    u->n_msgs = o->n_msgs;
    u->replies = o->replies;
    u->n_replies = o->n_replies;
    u->events = o->events;
    u->n_events = o->n_events;
    for (size_t i = 0; i < u->n_replies; i++) {
        u->replies[i].reply.primary = u->replies[i].primary;
        u->replies[i].reply.message = u->replies[i].message;
    }
    memset(o, 0, sizeof(*o));
    return true;
}

/* THE DURABILITY RULE. Early Appends first (a primary's backups then write
 * in parallel with its own disk), but never while a vote or epoch waits to
 * be persisted; then persistence and the sync; then everything else. */
bool core_update_apply(const struct core_update *u, struct core_sink *sink)
{
    bool early_ok = !u->has_state;
    for (size_t i = 0; early_ok && i < u->n_msgs; i++) {
        if (u->msgs[i].early) {
            sink->send(sink, u->msgs[i].to, &u->msgs[i].msg, true);
        }
    }
    if (u->has_state) {
        sink->persist_state(sink, &u->hs);
    }
    if (u->has_snapshot && sink->persist_snapshot != NULL) {
        sink->persist_snapshot(sink, u);
    }
    if (u->has_entries) {
        sink->persist_entries(sink, u->truncate_from, u->entries, u->n_entries);
    }
    if (u->has_checkpoint && sink->persist_checkpoint != NULL) {
        sink->persist_checkpoint(sink, &u->checkpoint);
    }
    if ((u->has_state || u->has_entries || u->has_snapshot) && !sink->sync(sink)) {
        /* What it guards is lost, as messages may be; but every waiting
         * client hears something: "unknown, retry with the same id" is
         * true whatever the reply would have said. */
        for (size_t i = 0; i < u->n_replies; i++) {
            struct core_reply r = u->replies[i].reply;
            r.status = CORE_REPLY_UNKNOWN;
            r.index = 0;
            r.primary = "";
            r.message = "this replica could not write its log; retry with the same id";
            sink->reply(sink, u->replies[i].token, &r);
        }
        return false;
    }
    /* Replies first: a client told UNKNOWN by a deposed primary hears it
     * before that replica answers its new primary. */
    for (size_t i = 0; i < u->n_replies; i++) {
        sink->reply(sink, u->replies[i].token, &u->replies[i].reply);
    }
    for (size_t i = 0; i < u->n_msgs; i++) {
        if (!early_ok || !u->msgs[i].early) {
            sink->send(sink, u->msgs[i].to, &u->msgs[i].msg, false);
        }
    }
    for (size_t i = 0; i < u->n_events; i++) {
        sink->event(sink, &u->events[i]);
    }
    return true;
}

void core_advance(struct core *c, int64_t now, const struct core_update *u)
{
    (void)now;
    /* The log matching property: if the entry at durable_index still has
     * the epoch it had when persisted, so does everything before it. */
    if (u->durable_index > c->durable && u->durable_index <= last_index(c) &&
        epoch_at(c, u->durable_index) == u->durable_epoch) {
        c->durable = u->durable_index;
        if (c->role == CORE_PRIMARY) {
            primary_update_commit(c);
        }
    }
    assert(c->durable <= last_index(c));
    assert(c->commit <= last_index(c));
}

void core_update_free(struct core_update *u)
{
    for (size_t i = 0; i < u->n_msgs; i++) {
        free(u->msgs[i].own);
    }
    free(u->msgs);
    free(u->replies);
    free(u->events);
    memset(u, 0, sizeof(*u));
}

void core_run_updates(struct core *c, int64_t now, struct core_sink *sink)
{
    struct core_update u;
    while (core_ready(c, &u)) {
        if (core_update_apply(&u, sink)) {
            core_advance(c, now, &u);
        }
        core_update_free(&u);
    }
}
