/*
 * tests/unit/test_core.c — deterministic rule tests for the protocol core.
 *
 * Each test drives one to four real cores; after every input the harness
 * takes the core's update and carries it out with the production
 * core_update_apply into a recording sink: every send, persist, reply and
 * event is deep-copied into one ordered list per core, the sync confirms the
 * update at once (core_advance), and random() returns a fixed number, so
 * election deadlines are exact and the order of durable writes against sends
 * can be asserted. Incoming
 * messages are hand-crafted to pin one rule at a time, or routed between
 * cores (zero latency, per-link FIFO, optional cuts) where the rule is about
 * their interplay. Randomized fault schedules live in tests/sim; these tests
 * pin single rules with exact values.
 *
 * Tests named test_bug_* assert the behaviour a user needs where the core
 * does not provide it yet; the comment above each says what it does instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

#define HB        50  /* heartbeat_ms in every test */
#define EMIN      300 /* election_min_ms */
#define EMAX      600 /* election_max_ms: deadlines are now + EMIN + rnd % (EMAX - EMIN) */
#define MAX_NODES 5
#define DISK_MAX  64

/* ------------------------------------------------------------------------
 * The recording io
 * ------------------------------------------------------------------------ */

enum rec_kind { REC_SEND, REC_STATE, REC_ENTRIES, REC_REPLY, REC_EVENT };

/* One io call, deep-copied: the core lends its buffers only for the call. */
struct rec {
    enum rec_kind kind;
    size_t seq; /* position in this core's call order */
    /* REC_SEND: msg.from is the sender; entries and bootstrap point below,
     * so a record can be delivered as is to another core. */
    char to[CORE_ID_MAX];
    bool early; /* sent before the update's persistence (a primary's Append) */
    struct core_msg msg;
    char boot[CORE_MAX_MEMBERS][CORE_ID_MAX];
    const char *boot_ptr[CORE_MAX_MEMBERS];
    /* REC_SEND (Append) and REC_ENTRIES. */
    struct core_entry *entries;
    size_t n_entries;
    uint64_t truncate_from;
    struct core_hard_state hs; /* REC_STATE */
    uint64_t token;            /* REC_REPLY; reply.primary points at primary */
    struct core_reply reply;
    char primary[CORE_ID_MAX];
    char type[32]; /* REC_EVENT */
    char subject[CORE_ID_MAX];
    uint64_t epoch;
    uint64_t index;
};

struct harness {
    struct core_sink sink;
    char id[CORE_ID_MAX];
    struct core *core;
    uint64_t rnd; /* what random() returns */
    struct rec **recs;
    size_t n_recs;
    size_t cap_recs;
    size_t routed; /* records before this one were seen by route() */
    /* The log as the persist_entries stream describes it: it must always
     * equal the core's log, with no gap and no overlap. */
    uint64_t disk_epoch[DISK_MAX];
    size_t disk_n;
    bool disk_gap;
    /* A slow disk: updates are applied but confirmed only by confirm(). */
    bool slow_disk;
    struct core_update held[8];
    size_t n_held;
};

struct world {
    struct harness h[MAX_NODES];
    bool cut[MAX_NODES]; /* route() drops every message to or from these */
};

static char *dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    if (n > 0) {
        memcpy(s, p, n);
    }
    s[n] = '\0';
    return s;
}

static char *dup_str(const char *s)
{
    return dup_bytes(s ? s : "", s ? strlen(s) : 0);
}

static struct core_entry *copy_entries(const struct core_entry *es, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    struct core_entry *out = calloc(n, sizeof(*out));
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        out[i] = es[i];
        out[i].client_id = dup_str(es[i].client_id);
        out[i].primary = dup_str(es[i].primary);
        out[i].data = (const uint8_t *)dup_bytes(es[i].data, es[i].len);
    }
    return out;
}

static void free_entries(struct core_entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((void *)es[i].client_id);
        free((void *)es[i].primary);
        free((void *)es[i].data);
    }
    free(es);
}

static struct rec *rec_new(struct harness *h, enum rec_kind kind)
{
    if (h->n_recs == h->cap_recs) {
        size_t cap = h->cap_recs ? h->cap_recs * 2 : 64;
        struct rec **recs = realloc(h->recs, cap * sizeof(*recs));
        assert_non_null(recs);
        h->recs = recs;
        h->cap_recs = cap;
    }
    /* One allocation per record: pointers into a record stay valid. */
    struct rec *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->kind = kind;
    r->seq = h->n_recs;
    h->recs[h->n_recs++] = r;
    return r;
}

static void io_send(struct core_sink *io, const char *to, const struct core_msg *m, bool early)
{
    struct harness *h = io->data;
    struct rec *r = rec_new(h, REC_SEND);
    snprintf(r->to, sizeof(r->to), "%s", to);
    r->early = early;
    r->msg = *m;
    r->msg.from = h->id;
    if (m->type == CORE_MSG_APPEND) {
        r->entries = copy_entries(m->append.entries, m->append.n_entries);
        r->n_entries = m->append.n_entries;
        r->msg.append.entries = r->entries;
    } else if (m->type == CORE_MSG_VOTE_REQUEST) {
        assert_true(m->vote_request.n_bootstrap <= CORE_MAX_MEMBERS);
        for (unsigned i = 0; i < m->vote_request.n_bootstrap; i++) {
            snprintf(r->boot[i], CORE_ID_MAX, "%s", m->vote_request.bootstrap[i]);
            r->boot_ptr[i] = r->boot[i];
        }
        r->msg.vote_request.bootstrap = r->boot_ptr;
    }
}

static void io_persist_state(struct core_sink *io, const struct core_hard_state *hs)
{
    struct rec *r = rec_new(io->data, REC_STATE);
    r->hs = *hs;
}

static void io_persist_entries(struct core_sink *io, uint64_t truncate_from,
                               const struct core_entry *es, size_t n)
{
    struct harness *h = io->data;
    struct rec *r = rec_new(h, REC_ENTRIES);
    r->truncate_from = truncate_from;
    r->entries = copy_entries(es, n);
    r->n_entries = n;
    if (truncate_from > 0) {
        if (truncate_from - 1 > h->disk_n) {
            h->disk_gap = true;
        } else {
            h->disk_n = truncate_from - 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (es[i].index != h->disk_n + 1 || h->disk_n == DISK_MAX) {
            h->disk_gap = true;
            continue;
        }
        h->disk_epoch[h->disk_n++] = es[i].epoch;
    }
}

static void io_reply(struct core_sink *io, uint64_t token, const struct core_reply *rep)
{
    struct rec *r = rec_new(io->data, REC_REPLY);
    r->token = token;
    r->reply = *rep;
    snprintf(r->primary, sizeof(r->primary), "%s", rep->primary ? rep->primary : "");
    r->reply.primary = r->primary;
    r->reply.message = NULL;
}

static void io_event(struct core_sink *io, const struct core_event *ev)
{
    struct rec *r = rec_new(io->data, REC_EVENT);
    snprintf(r->type, sizeof(r->type), "%s", event_name(ev->type));
    snprintf(r->subject, sizeof(r->subject), "%s", ev->subject);
    r->epoch = ev->epoch;
    r->index = ev->index;
}

/* The disk is the record: nothing to wait for. */
static bool io_sync(struct core_sink *io)
{
    return true;
}

static uint64_t io_random(void *arg)
{
    return ((struct harness *)arg)->rnd;
}

/* Carry out what the last input made necessary, as an adapter does, and
 * confirm it durable at once. */
static void drain(struct harness *h, int64_t now)
{
    if (!h->slow_disk) {
        core_run_updates(h->core, now, &h->sink);
        return;
    }
    struct core_update u;
    while (core_ready(h->core, &u)) {
        core_update_apply(&u, &h->sink);
        assert_true(h->n_held < 8);
        h->held[h->n_held++] = u;
    }
}

/* The slow disk's fsync returns: every held update is durable. */
static void confirm(struct harness *h, int64_t now)
{
    for (size_t i = 0; i < h->n_held; i++) {
        core_advance(h->core, now, &h->held[i]);
        core_update_free(&h->held[i]);
    }
    h->n_held = 0;
    drain(h, now);
}

/* ------------------------------------------------------------------------
 * Fixture, construction and inputs
 * ------------------------------------------------------------------------ */

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    *state = w;
    return 0;
}

/* Frees every core and record even when a test failed half way. */
static int teardown(void **state)
{
    struct world *w = *state;
    for (int s = 0; s < MAX_NODES; s++) {
        struct harness *h = &w->h[s];
        core_free(h->core);
        for (size_t i = 0; i < h->n_held; i++) {
            core_update_free(&h->held[i]);
        }
        for (size_t i = 0; i < h->n_recs; i++) {
            free_entries(h->recs[i]->entries, h->recs[i]->n_entries);
            free(h->recs[i]);
        }
        free(h->recs);
    }
    free(w);
    return 0;
}

static struct core_options opts(const char *id)
{
    return (struct core_options){
        .id = id,
        .heartbeat_ms = HB,
        .election_min_ms = EMIN,
        .election_max_ms = EMAX,
        .initial_size = 3,
    };
}

static struct core_hard_state hstate(uint64_t epoch, const char *voted_for)
{
    struct core_hard_state hs;
    memset(&hs, 0, sizeof(hs));
    hs.epoch = epoch;
    snprintf(hs.voted_for, sizeof(hs.voted_for), "%s", voted_for);
    return hs;
}

static const char CFG_ABC[] = "v a\nv b\nv c\n";

static struct core_entry ent(uint64_t index, uint64_t epoch, enum core_entry_type type,
                             const char *client_id, const char *data)
{
    return (struct core_entry){
        .index = index,
        .epoch = epoch,
        .type = type,
        .client_id = client_id,
        .primary = "a",
        .data = (const uint8_t *)data,
        .len = data ? strlen(data) : 0,
    };
}

/* A recovered log: entry 1 configures voters a, b and c; entry i > 1 is a
 * data entry without client id of epoch epochs[i - 1]. */
static size_t abc_log(struct core_entry *out, const uint64_t *epochs, size_t n)
{
    out[0] = ent(1, epochs[0], CORE_ENTRY_CONFIG, "", CFG_ABC);
    for (size_t i = 1; i < n; i++) {
        out[i] = ent(i + 1, epochs[i], CORE_ENTRY_DATA, "", "x");
    }
    return n;
}

static struct harness *start(struct world *w, int slot, const struct core_options *o,
                             const struct core_hard_state *hs, const struct core_entry *log,
                             size_t n, int64_t now)
{
    struct harness *h = &w->h[slot];
    assert_null(h->core);
    assert_true(n <= DISK_MAX);
    snprintf(h->id, sizeof(h->id), "%s", o->id);
    h->sink = (struct core_sink){
        .data = h,
        .persist_state = io_persist_state,
        .persist_entries = io_persist_entries,
        .sync = io_sync,
        .send = io_send,
        .reply = io_reply,
        .event = io_event,
    };
    struct core_options with_random = *o;
    with_random.random = io_random;
    with_random.arg = h;
    for (size_t i = 0; i < n; i++) {
        h->disk_epoch[h->disk_n++] = log[i].epoch; /* recovered: already on disk */
    }
    h->core = core_new(&with_random, hs, log, n, now);
    assert_non_null(h->core);
    return h;
}

static void deliver(struct harness *h, int64_t now, struct core_msg m)
{
    core_recv(h->core, now, &m);
    drain(h, now);
}

static void tick(struct harness *h, int64_t now)
{
    core_tick(h->core, now);
    drain(h, now);
}

static void peer_up(struct harness *h, int64_t now, const char *id)
{
    core_peer_up(h->core, now, id);
    drain(h, now);
}

static void peer_down(struct harness *h, int64_t now, const char *id)
{
    core_peer_down(h->core, now, id);
    drain(h, now);
}

static void flush(struct harness *h, int64_t now)
{
    core_flush(h->core, now);
    drain(h, now);
}

static struct core_msg msg_vote_req(const char *from, uint64_t epoch, uint64_t last_index,
                                    uint64_t last_epoch, bool pre)
{
    struct core_msg m = {.type = CORE_MSG_VOTE_REQUEST, .from = from, .epoch = epoch};
    m.vote_request.last_index = last_index;
    m.vote_request.last_epoch = last_epoch;
    m.vote_request.pre_vote = pre;
    return m;
}

/* A vote request from a replica with an empty log, carrying its bootstrap list. */
static struct core_msg msg_boot_req(const char *from, uint64_t epoch, bool pre,
                                    const char *const *boot, unsigned n)
{
    struct core_msg m = msg_vote_req(from, epoch, 0, 0, pre);
    m.vote_request.n_bootstrap = n;
    m.vote_request.bootstrap = boot;
    return m;
}

static struct core_msg msg_vote_resp(const char *from, uint64_t epoch, bool granted, bool pre)
{
    struct core_msg m = {.type = CORE_MSG_VOTE_RESPONSE, .from = from, .epoch = epoch};
    m.vote_response.granted = granted;
    m.vote_response.pre_vote = pre;
    return m;
}

static struct core_msg msg_append(const char *from, uint64_t epoch, uint64_t prev,
                                  uint64_t prev_epoch, uint64_t commit, const struct core_entry *es,
                                  size_t n)
{
    struct core_msg m = {.type = CORE_MSG_APPEND, .from = from, .epoch = epoch};
    m.append.prev_index = prev;
    m.append.prev_epoch = prev_epoch;
    m.append.commit_index = commit;
    m.append.entries = es;
    m.append.n_entries = n;
    return m;
}

static struct core_msg msg_append_resp(const char *from, uint64_t epoch, bool success,
                                       uint64_t match, uint64_t hint)
{
    struct core_msg m = {.type = CORE_MSG_APPEND_RESPONSE, .from = from, .epoch = epoch};
    m.append_response.success = success;
    m.append_response.match_index = match;
    m.append_response.hint_index = hint;
    return m;
}

static void request(struct harness *h, int64_t now, uint64_t token, const char *client_id,
                    const char *data)
{
    core_client_request(h->core, now, token, client_id, (const uint8_t *)data, strlen(data),
                        CORE_SEEN_UNKNOWN);
    drain(h, now);
}

/* ------------------------------------------------------------------------
 * Queries over the recorded calls ("from" is a mark(): a record index)
 * ------------------------------------------------------------------------ */

static size_t mark(const struct harness *h)
{
    return h->n_recs;
}

static size_t count(const struct harness *h, size_t from, enum rec_kind kind)
{
    size_t n = 0;
    for (size_t i = from; i < h->n_recs; i++) {
        n += h->recs[i]->kind == kind;
    }
    return n;
}

static size_t count_sends(const struct harness *h, size_t from, enum core_msg_type type)
{
    size_t n = 0;
    for (size_t i = from; i < h->n_recs; i++) {
        n += h->recs[i]->kind == REC_SEND && h->recs[i]->msg.type == type;
    }
    return n;
}

/* The first message of `type` to `to` at or after `from`, or NULL. */
static struct rec *sent(const struct harness *h, size_t from, enum core_msg_type type,
                        const char *to)
{
    for (size_t i = from; i < h->n_recs; i++) {
        struct rec *r = h->recs[i];
        if (r->kind == REC_SEND && r->msg.type == type && strcmp(r->to, to) == 0) {
            return r;
        }
    }
    return NULL;
}

/* The last message of `type` to `to` at or after `from`, or NULL. */
static struct rec *last_sent(const struct harness *h, size_t from, enum core_msg_type type,
                             const char *to)
{
    struct rec *found = NULL;
    for (size_t i = from; i < h->n_recs; i++) {
        struct rec *r = h->recs[i];
        if (r->kind == REC_SEND && r->msg.type == type && strcmp(r->to, to) == 0) {
            found = r;
        }
    }
    return found;
}

/* The k-th (from 0) record of `kind` at or after `from`, or NULL. */
static struct rec *nth(const struct harness *h, size_t from, enum rec_kind kind, size_t k)
{
    for (size_t i = from; i < h->n_recs; i++) {
        if (h->recs[i]->kind == kind && k-- == 0) {
            return h->recs[i];
        }
    }
    return NULL;
}

static struct rec *find_event(const struct harness *h, size_t from, const char *type)
{
    for (size_t i = from; i < h->n_recs; i++) {
        struct rec *r = h->recs[i];
        if (r->kind == REC_EVENT && strcmp(r->type, type) == 0) {
            return r;
        }
    }
    return NULL;
}

static size_t count_events(const struct harness *h, size_t from, const char *type)
{
    size_t n = 0;
    for (size_t i = from; i < h->n_recs; i++) {
        n += h->recs[i]->kind == REC_EVENT && strcmp(h->recs[i]->type, type) == 0;
    }
    return n;
}

static struct rec *find_reply(const struct harness *h, size_t from, uint64_t token)
{
    for (size_t i = from; i < h->n_recs; i++) {
        struct rec *r = h->recs[i];
        if (r->kind == REC_REPLY && r->token == token) {
            return r;
        }
    }
    return NULL;
}

static size_t count_replies(const struct harness *h, size_t from, uint64_t token)
{
    size_t n = 0;
    for (size_t i = from; i < h->n_recs; i++) {
        n += h->recs[i]->kind == REC_REPLY && h->recs[i]->token == token;
    }
    return n;
}

/* The answer to a vote request, checked in full. */
static void assert_vote_resp(const struct rec *r, uint64_t epoch, bool granted, bool pre)
{
    assert_non_null(r);
    assert_int_equal(r->msg.epoch, epoch);
    assert_int_equal(r->msg.vote_response.granted, granted);
    assert_int_equal(r->msg.vote_response.pre_vote, pre);
}

static void assert_append_resp(const struct rec *r, uint64_t epoch, bool success, uint64_t match,
                               uint64_t hint)
{
    assert_non_null(r);
    assert_int_equal(r->msg.epoch, epoch);
    assert_int_equal(r->msg.append_response.success, success);
    if (success) {
        assert_int_equal(r->msg.append_response.match_index, match);
    } else {
        assert_int_equal(r->msg.append_response.hint_index, hint);
    }
}

static void assert_reply(const struct rec *r, enum core_reply_status st, uint64_t index,
                         uint64_t epoch, const char *primary)
{
    assert_non_null(r);
    assert_int_equal(r->reply.status, st);
    assert_int_equal(r->reply.index, index);
    assert_int_equal(r->reply.epoch, epoch);
    assert_string_equal(r->reply.primary, primary);
}

/* What was persisted, replayed, is exactly the core's log. */
static void assert_disk_matches(const struct harness *h)
{
    assert_false(h->disk_gap);
    assert_int_equal(h->disk_n, core_last_index(h->core));
    for (size_t i = 0; i < h->disk_n; i++) {
        assert_int_equal(h->disk_epoch[i], core_entry_at(h->core, i + 1)->epoch);
    }
}

static void assert_log_epochs(const struct harness *h, const uint64_t *epochs, size_t n)
{
    assert_int_equal(core_last_index(h->core), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(core_entry_at(h->core, i + 1)->epoch, epochs[i]);
    }
}

/* The members a CONFIG entry lists, as "v a,v b,l d". */
static void config_text(const struct core_entry *e, char *buf, size_t cap)
{
    struct core_config cfg;
    assert_int_equal(e->type, CORE_ENTRY_CONFIG);
    assert_int_equal(core_config_decode(e->data, e->len, &cfg), 0);
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < cfg.n; i++) {
        used += (size_t)snprintf(buf + used, cap - used, "%s%c %s", i ? "," : "",
                                 cfg.members[i].voter ? 'v' : 'l', cfg.members[i].id);
        assert_true(used < cap);
    }
    for (unsigned i = 0; i < cfg.n_removed; i++) {
        used += (size_t)snprintf(buf + used, cap - used, ",r %s", cfg.removed[i]);
        assert_true(used < cap);
    }
}

/* ------------------------------------------------------------------------
 * Routing between real cores and running time forward
 * ------------------------------------------------------------------------ */

static int slot_of(struct world *w, const char *id)
{
    for (int s = 0; s < MAX_NODES; s++) {
        if (w->h[s].core != NULL && strcmp(w->h[s].id, id) == 0) {
            return s;
        }
    }
    return -1;
}

/* One hop: deliver every recorded message not yet routed, in order per
 * sender, then flush every core as the adapter does after each loop
 * iteration. Returns whether anything is left to route. */
static bool route_once(struct world *w, int64_t now)
{
    for (int s = 0; s < MAX_NODES; s++) {
        struct harness *h = &w->h[s];
        while (h->core != NULL && h->routed < h->n_recs) {
            struct rec *r = h->recs[h->routed++];
            int d = r->kind == REC_SEND ? slot_of(w, r->to) : -1;
            if (d >= 0 && !w->cut[s] && !w->cut[d]) {
                deliver(&w->h[d], now, r->msg);
            }
        }
    }
    bool busy = false;
    for (int s = 0; s < MAX_NODES; s++) {
        if (w->h[s].core != NULL) {
            flush(&w->h[s], now);
            busy |= w->h[s].routed < w->h[s].n_recs;
        }
    }
    return busy;
}

/* Route until the cluster is quiet. */
static void route(struct world *w, int64_t now)
{
    for (int pass = 0; pass < 1000; pass++) {
        if (!route_once(w, now)) {
            return;
        }
    }
    fail_msg("route: still busy after 1000 passes");
}

/* Every millisecond of [from, to]: tick the cores that are due, then route. */
static void run(struct world *w, int64_t from, int64_t to)
{
    for (int64_t t = from; t <= to; t++) {
        for (int s = 0; s < MAX_NODES; s++) {
            if (w->h[s].core != NULL && core_next_deadline(w->h[s].core) <= t) {
                tick(&w->h[s], t);
            }
        }
        route(w, t);
    }
}

/* Start o->id with the given log, peers p1 and p2 up, and elect it at `now`
 * (its first deadline: it starts at now - EMIN with rnd 0) with the pre-vote
 * and the vote of `voter` alone: a majority of three. */
static struct harness *elect(struct world *w, int slot, const struct core_options *o,
                             const struct core_hard_state *hs, const struct core_entry *log,
                             size_t n, const char *p1, const char *p2, const char *voter,
                             int64_t now)
{
    struct harness *h = start(w, slot, o, hs, log, n, now - EMIN);
    peer_up(h, now - EMIN, p1);
    peer_up(h, now - EMIN, p2);
    tick(h, now);
    assert_int_equal(core_role(h->core), CORE_CANDIDATE);
    uint64_t epoch = core_epoch(h->core) + 1;
    deliver(h, now, msg_vote_resp(voter, epoch, true, true));
    deliver(h, now, msg_vote_resp(voter, epoch, true, false));
    assert_int_equal(core_role(h->core), CORE_PRIMARY);
    assert_int_equal(core_epoch(h->core), epoch);
    return h;
}

/* The usual primary: "a" of epoch 2 over the log [CONFIG a,b,c @1], with
 * its NOOP at index 2 not yet committed; b and c are up. */
static struct harness *primary_a_opts(struct world *w, const struct core_options *o, int64_t now)
{
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[1] = {ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC)};
    return elect(w, 0, o, &hs, log, 1, "b", "c", "b", now);
}

static struct harness *primary_a(struct world *w, int64_t now)
{
    struct core_options o = opts("a");
    return primary_a_opts(w, &o, now);
}

/* "b" over [CONFIG a,b,c @1] in epoch 1, following primary "a" since `now`. */
static struct harness *backup_b(struct world *w, int slot, int64_t now)
{
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[1] = {ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC)};
    struct harness *b = start(w, slot, &o, &hs, log, 1, 0);
    peer_up(b, 0, "a");
    peer_up(b, 0, "c");
    deliver(b, now, msg_append("a", 1, 1, 1, 1, NULL, 0));
    assert_string_equal(core_primary(b->core), "a");
    assert_int_equal(core_role(b->core), CORE_BACKUP);
    return b;
}

/* ========================================================================
 * 1. Bootstrap
 * ====================================================================== */

/* The bootstrap list is fluid while discovery fills the view: nothing is
 * persisted when it is computed, and a pre-vote fixes nothing, so a lower id
 * discovered late still changes it. It is fixed, persisted together with the
 * new epoch and the self-vote, before the first real vote request leaves;
 * later discoveries no longer change it. */
static void test_bootstrap_list_fixed_with_first_vote(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct harness *b = start(w, 0, &o, NULL, NULL, 0, 0);

    peer_up(b, 0, "c");
    peer_up(b, 0, "a");
    assert_int_equal(mark(b), 0); /* computed, not persisted */
    tick(b, EMIN);
    assert_int_equal(count(b, 0, REC_STATE), 0);
    assert_int_equal(count_sends(b, 0, CORE_MSG_VOTE_REQUEST), 2);
    struct rec *r = sent(b, 0, CORE_MSG_VOTE_REQUEST, "a");
    assert_non_null(r);
    assert_true(r->msg.vote_request.pre_vote);
    assert_int_equal(r->msg.epoch, 1);
    assert_int_equal(r->msg.vote_request.n_bootstrap, 3);
    assert_string_equal(r->msg.vote_request.bootstrap[0], "a");
    assert_string_equal(r->msg.vote_request.bootstrap[1], "b");
    assert_string_equal(r->msg.vote_request.bootstrap[2], "c");

    /* A lower id arrives before any real vote: the list moves with it. */
    peer_up(b, EMIN + 1, "0");
    assert_int_equal(count(b, 0, REC_STATE), 0);
    size_t m = mark(b);
    tick(b, core_next_deadline(b->core));
    r = sent(b, m, CORE_MSG_VOTE_REQUEST, "0");
    assert_non_null(r);
    assert_true(r->msg.vote_request.pre_vote);
    assert_string_equal(r->msg.vote_request.bootstrap[0], "0");
    assert_string_equal(r->msg.vote_request.bootstrap[1], "a");
    assert_string_equal(r->msg.vote_request.bootstrap[2], "b");

    /* Every member and a majority of the view grant the pre-vote. */
    int64_t t = core_next_deadline(b->core) - 1;
    deliver(b, t, msg_vote_resp("0", 1, true, true));
    assert_int_equal(count(b, m, REC_STATE), 0);
    deliver(b, t, msg_vote_resp("a", 1, true, true));
    struct rec *st = nth(b, m, REC_STATE, 0);
    assert_non_null(st);
    assert_int_equal(st->hs.epoch, 1);
    assert_string_equal(st->hs.voted_for, "b");
    assert_int_equal(st->hs.n_bootstrap, 3);
    assert_string_equal(st->hs.bootstrap[0], "0");
    assert_string_equal(st->hs.bootstrap[1], "a");
    assert_string_equal(st->hs.bootstrap[2], "b");
    const char *to[] = {"0", "a", "c"};
    for (int i = 0; i < 3; i++) {
        r = last_sent(b, m, CORE_MSG_VOTE_REQUEST, to[i]);
        assert_non_null(r);
        assert_false(r->msg.vote_request.pre_vote);
        assert_true(r->seq > st->seq); /* durable before it leaves */
    }

    /* Fixed now: an even lower id changes nothing. */
    size_t m2 = mark(b);
    peer_up(b, t + 1, "-");
    tick(b, core_next_deadline(b->core));
    r = sent(b, m2, CORE_MSG_VOTE_REQUEST, "a");
    assert_non_null(r);
    assert_string_equal(r->msg.vote_request.bootstrap[0], "0");
}

/* Every replica that knows the same set computes the same initial_size
 * lowest ids, and one outside them is a learner that never campaigns. */
static void test_bootstrap_picks_lowest_ids(void **state)
{
    struct world *w = *state;
    struct core_options oc = opts("c");
    struct core_options oe = opts("e");
    struct harness *c = start(w, 0, &oc, NULL, NULL, 0, 0);
    struct harness *e = start(w, 1, &oe, NULL, NULL, 0, 0);

    /* Each heard from two others (messages, no connection event yet), then
     * a's connection completes the count with the same four known. */
    deliver(c, 0, msg_vote_resp("e", 0, false, true));
    deliver(c, 0, msg_vote_resp("d", 0, false, true));
    deliver(e, 0, msg_vote_resp("d", 0, false, true));
    deliver(e, 0, msg_vote_resp("c", 0, false, true));
    peer_up(c, 0, "a");
    peer_up(e, 0, "a");
    assert_int_equal(count(c, 0, REC_STATE), 0);
    assert_int_equal(core_role(c->core), CORE_BACKUP);
    assert_int_equal(core_role(e->core), CORE_LEARNER);

    tick(c, core_next_deadline(c->core));
    struct rec *r = sent(c, 0, CORE_MSG_VOTE_REQUEST, "e");
    assert_non_null(r); /* the whole view is asked, members or not */
    assert_int_equal(r->msg.vote_request.n_bootstrap, 3);
    assert_string_equal(r->msg.vote_request.bootstrap[0], "a");
    assert_string_equal(r->msg.vote_request.bootstrap[1], "c");
    assert_string_equal(r->msg.vote_request.bootstrap[2], "d");

    size_t m = mark(e);
    for (int64_t t = 0; t <= 10 * EMAX; t++) {
        if (core_next_deadline(e->core) <= t) {
            tick(e, t);
        }
    }
    assert_int_equal(mark(e), m);
    assert_int_equal(core_epoch(e->core), 0);
}

/* With too few replicas known nothing is chosen and nobody campaigns, however
 * long it waits; the missing replica's arrival unblocks it. */
static void test_no_bootstrap_without_enough_peers(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    struct harness *a = start(w, 0, &o, NULL, NULL, 0, 0);
    peer_up(a, 0, "b");

    int ticks = 0;
    for (int64_t t = 0; t <= 5000; t++) {
        if (core_next_deadline(a->core) <= t) {
            tick(a, t);
            ticks++;
            assert_true(core_next_deadline(a->core) > t); /* re-armed, not spinning */
        }
    }
    assert_true(ticks >= 5000 / EMAX);
    assert_int_equal(mark(a), 0); /* no persist, no send, no event */
    assert_int_equal(core_epoch(a->core), 0);
    assert_int_equal(core_last_index(a->core), 0);

    peer_up(a, 5000, "c");
    tick(a, core_next_deadline(a->core));
    assert_int_equal(count_sends(a, 0, CORE_MSG_VOTE_REQUEST), 2);
}

/* ========================================================================
 * 2. Election timeout, pre-vote, vote
 * ====================================================================== */

static void test_election_timeout_prevote_then_vote(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[1] = {ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC)};
    w->h[0].rnd = 1234; /* 1234 % (EMAX - EMIN) = 34 */
    struct harness *a = start(w, 0, &o, &hs, log, 1, 0);
    peer_up(a, 0, "b");
    peer_up(a, 0, "c");
    assert_int_equal(core_next_deadline(a->core), EMIN + 34);

    size_t m = mark(a);
    tick(a, EMIN + 33);
    assert_int_equal(mark(a), m);

    /* At the deadline: a pre-vote for epoch 2, and epoch 1 stays on disk. */
    tick(a, EMIN + 34);
    assert_int_equal(count_sends(a, m, CORE_MSG_VOTE_REQUEST), 2);
    const char *to[] = {"b", "c"};
    for (int i = 0; i < 2; i++) {
        struct rec *r = sent(a, m, CORE_MSG_VOTE_REQUEST, to[i]);
        assert_non_null(r);
        assert_true(r->msg.vote_request.pre_vote);
        assert_int_equal(r->msg.epoch, 2);
        assert_int_equal(r->msg.vote_request.last_index, 1);
        assert_int_equal(r->msg.vote_request.last_epoch, 1);
        assert_int_equal(r->msg.vote_request.n_bootstrap, 0); /* the log configures */
    }
    assert_int_equal(count(a, m, REC_STATE), 0);
    assert_int_equal(core_epoch(a->core), 1);
    assert_null(find_event(a, m, "election_started"));
    assert_int_equal(core_role(a->core), CORE_CANDIDATE);
    assert_int_equal(core_next_deadline(a->core), 2 * (EMIN + 34));

    /* One pre-vote besides its own is a majority: the real vote begins, with
     * the new epoch and the self-vote durable before any request. */
    m = mark(a);
    deliver(a, 340, msg_vote_resp("b", 2, true, true));
    assert_int_equal(count(a, m, REC_STATE), 1);
    struct rec *st = nth(a, m, REC_STATE, 0);
    assert_int_equal(st->hs.epoch, 2);
    assert_string_equal(st->hs.voted_for, "a");
    assert_int_equal(count_sends(a, m, CORE_MSG_VOTE_REQUEST), 2);
    for (int i = 0; i < 2; i++) {
        struct rec *r = sent(a, m, CORE_MSG_VOTE_REQUEST, to[i]);
        assert_non_null(r);
        assert_true(r->seq > st->seq);
        assert_false(r->msg.vote_request.pre_vote);
        assert_int_equal(r->msg.epoch, 2);
    }
    assert_non_null(find_event(a, m, "election_started"));
    assert_int_equal(core_epoch(a->core), 2);
    assert_string_equal(core_primary(a->core), "");

    /* A majority of votes: primary, its NOOP persisted; the Appends that
     * carry it are early (they may leave before the primary's own fsync,
     * which the primary then waits for before counting itself). */
    m = mark(a);
    deliver(a, 345, msg_vote_resp("c", 2, true, false));
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_string_equal(core_primary(a->core), "a");
    struct rec *ev = find_event(a, m, "elected");
    assert_non_null(ev);
    assert_string_equal(ev->subject, "a");
    assert_int_equal(ev->epoch, 2);
    struct rec *pe = nth(a, m, REC_ENTRIES, 0);
    assert_non_null(pe);
    assert_int_equal(pe->truncate_from, 0);
    assert_int_equal(pe->n_entries, 1);
    assert_int_equal(pe->entries[0].index, 2);
    assert_int_equal(pe->entries[0].epoch, 2);
    assert_int_equal(pe->entries[0].type, CORE_ENTRY_NOOP);
    assert_string_equal(pe->entries[0].primary, "a");
    for (int i = 0; i < 2; i++) {
        struct rec *r = sent(a, m, CORE_MSG_APPEND, to[i]);
        assert_non_null(r);
        assert_true(r->early && r->seq < pe->seq);
        assert_int_equal(r->msg.epoch, 2);
        assert_int_equal(r->msg.append.prev_index, 1);
        assert_int_equal(r->msg.append.prev_epoch, 1);
        assert_int_equal(r->msg.append.commit_index, 0);
        assert_int_equal(r->msg.append.n_entries, 1);
        assert_int_equal(r->entries[0].index, 2);
        assert_int_equal(r->entries[0].type, CORE_ENTRY_NOOP);
    }
    assert_int_equal(core_commit_index(a->core), 0);
    assert_disk_matches(a);
}

/* Failed pre-votes never touch the epoch: a replica that cannot win does not
 * inflate it and later force a healthy primary to step down. */
static void test_failed_prevote_keeps_epoch(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[1] = {ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC)};
    struct harness *a = start(w, 0, &o, &hs, log, 1, 0);
    peer_up(a, 0, "b");
    peer_up(a, 0, "c");

    for (int round = 1; round <= 5; round++) {
        size_t m = mark(a);
        tick(a, round * EMIN);
        assert_int_equal(count_sends(a, m, CORE_MSG_VOTE_REQUEST), 2);
        struct rec *r = sent(a, m, CORE_MSG_VOTE_REQUEST, "b");
        assert_true(r->msg.vote_request.pre_vote);
        assert_int_equal(r->msg.epoch, 2);
        deliver(a, round * EMIN + 1, msg_vote_resp("b", 1, false, true));
        deliver(a, round * EMIN + 1, msg_vote_resp("c", 1, false, true));
    }
    assert_int_equal(count(a, 0, REC_STATE), 0);
    assert_int_equal(core_epoch(a->core), 1);
    assert_int_equal(core_role(a->core), CORE_CANDIDATE);
}

/* ========================================================================
 * 3. Vote rules
 * ====================================================================== */

/* b's log: [1:CONFIG@1, 2:@1, 3:@2], epoch 2, no vote. */
static struct harness *voter_b(struct world *w, int slot, const char *voted_for)
{
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(2, voted_for);
    struct core_entry log[3];
    uint64_t epochs[] = {1, 1, 2};
    abc_log(log, epochs, 3);
    return start(w, slot, &o, &hs, log, 3, 0);
}

static void test_vote_denied_to_stale_log(void **state)
{
    struct world *w = *state;
    struct harness *b = voter_b(w, 0, "");

    /* A longer log of an older last epoch is less up to date. */
    deliver(b, 10, msg_vote_req("a", 3, 5, 1, true));
    assert_vote_resp(sent(b, 0, CORE_MSG_VOTE_RESPONSE, "a"), 2, false, true);
    deliver(b, 10, msg_vote_req("a", 3, 5, 1, false));
    assert_vote_resp(last_sent(b, 0, CORE_MSG_VOTE_RESPONSE, "a"), 3, false, false);

    /* Same last epoch, shorter log. */
    size_t m = mark(b);
    deliver(b, 11, msg_vote_req("c", 3, 2, 2, false));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 3, false, false);
    deliver(b, 11, msg_vote_req("c", 4, 2, 2, true));
    assert_vote_resp(last_sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 3, false, true);

    /* The same log is up to date enough. */
    m = mark(b);
    deliver(b, 12, msg_vote_req("c", 3, 3, 2, false));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 3, true, false);

    /* Durable: epoch 3 with no vote (on the first higher request), then c. */
    assert_int_equal(count(b, 0, REC_STATE), 2);
    assert_int_equal(nth(b, 0, REC_STATE, 0)->hs.epoch, 3);
    assert_string_equal(nth(b, 0, REC_STATE, 0)->hs.voted_for, "");
    assert_int_equal(nth(b, 0, REC_STATE, 1)->hs.epoch, 3);
    assert_string_equal(nth(b, 0, REC_STATE, 1)->hs.voted_for, "c");
    /* The grant is durable before the response that announces it. */
    assert_true(nth(b, 0, REC_STATE, 1)->seq < sent(b, m, CORE_MSG_VOTE_RESPONSE, "c")->seq);
}

static void test_one_vote_per_epoch(void **state)
{
    struct world *w = *state;
    struct harness *b = voter_b(w, 0, "");

    deliver(b, 10, msg_vote_req("a", 3, 3, 2, false));
    assert_vote_resp(sent(b, 0, CORE_MSG_VOTE_RESPONSE, "a"), 3, true, false);
    assert_int_equal(core_next_deadline(b->core), 10 + EMIN); /* granting defers its own */
    size_t m = mark(b);

    /* A better log does not buy a second vote in the same epoch. */
    deliver(b, 11, msg_vote_req("c", 3, 9, 2, false));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 3, false, false);
    /* The same candidate asking again (a lost response) gets it again. */
    deliver(b, 12, msg_vote_req("a", 3, 3, 2, false));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 3, true, false);
    assert_int_equal(count(b, m, REC_STATE), 0);
    assert_string_equal(nth(b, 0, REC_STATE, count(b, 0, REC_STATE) - 1)->hs.voted_for, "a");

    /* Recovered with a vote for a in its epoch, it still refuses c there. */
    struct harness *b2 = voter_b(w, 1, "a");
    deliver(b2, 10, msg_vote_req("c", 2, 9, 2, false));
    assert_vote_resp(sent(b2, 0, CORE_MSG_VOTE_RESPONSE, "c"), 2, false, false);
}

static void test_higher_epoch_request_clears_vote(void **state)
{
    struct world *w = *state;
    struct harness *b = voter_b(w, 0, "c"); /* voted for c in epoch 2 */

    deliver(b, 10, msg_vote_req("a", 5, 1, 1, false)); /* newer epoch, worse log */
    assert_vote_resp(sent(b, 0, CORE_MSG_VOTE_RESPONSE, "a"), 5, false, false);
    assert_int_equal(count(b, 0, REC_STATE), 1);
    struct rec *st = nth(b, 0, REC_STATE, 0);
    assert_int_equal(st->hs.epoch, 5);
    assert_string_equal(st->hs.voted_for, "");
    assert_int_equal(core_epoch(b->core), 5);

    /* Its vote in epoch 5 is free. */
    size_t m = mark(b);
    deliver(b, 11, msg_vote_req("d", 5, 3, 2, false));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "d"), 5, true, false);
    assert_string_equal(nth(b, m, REC_STATE, 0)->hs.voted_for, "d");
}

/* A backup that hears a live primary refuses votes (pre and real) without
 * even adopting the epoch, so a partitioned replica cannot depose it; once
 * the primary's process is gone it grants. */
static void test_lease_refuses_votes_until_primary_down(void **state)
{
    struct world *w = *state;
    struct harness *b = backup_b(w, 0, 1000);
    size_t m = mark(b);

    deliver(b, 1100, msg_vote_req("c", 2, 1, 1, true));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 1, false, true);
    deliver(b, 1100, msg_vote_req("c", 2, 1, 1, false));
    assert_vote_resp(last_sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 1, false, false);
    assert_int_equal(core_epoch(b->core), 1);
    assert_int_equal(count(b, m, REC_STATE), 0);
    assert_string_equal(core_primary(b->core), "a");

    peer_down(b, 1150, "a");
    m = mark(b);
    deliver(b, 1160, msg_vote_req("c", 2, 1, 1, true));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 2, true, true);
    assert_int_equal(core_epoch(b->core), 1); /* a pre-vote changes nothing */
    assert_int_equal(count(b, m, REC_STATE), 0);
}

/* Without a peer_down the lease lasts election_min_ms from the last contact. */
static void test_lease_expires_after_election_min(void **state)
{
    struct world *w = *state;
    struct harness *b = backup_b(w, 0, 1000);
    size_t m = mark(b);

    deliver(b, 1000 + EMIN - 1, msg_vote_req("c", 2, 1, 1, true));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 1, false, true);
    m = mark(b);
    deliver(b, 1000 + EMIN, msg_vote_req("c", 2, 1, 1, true));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 2, true, true);
}

/* A primary refuses every vote while it is primary: check-quorum, not a
 * disruptive candidate, decides when it stops. */
static void test_primary_refuses_votes(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    size_t m = mark(a);

    deliver(a, 1010, msg_vote_req("c", 9, 7, 5, true));
    assert_vote_resp(sent(a, m, CORE_MSG_VOTE_RESPONSE, "c"), 2, false, true);
    deliver(a, 1010, msg_vote_req("c", 9, 7, 5, false));
    assert_vote_resp(last_sent(a, m, CORE_MSG_VOTE_RESPONSE, "c"), 2, false, false);
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_int_equal(core_epoch(a->core), 2);
    assert_int_equal(count(a, m, REC_STATE), 0);
}

/* ========================================================================
 * 4. Bootstrap vote and the first primary
 * ====================================================================== */

static void test_bootstrap_vote_requires_same_list(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct harness *b = start(w, 0, &o, NULL, NULL, 0, 0);
    peer_up(b, 0, "a");
    peer_up(b, 0, "c");
    const char *abc[] = {"a", "b", "c"};
    const char *abd[] = {"a", "b", "d"};

    size_t m = mark(b);
    deliver(b, 10, msg_boot_req("a", 1, true, abd, 3));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 0, false, true);
    m = mark(b);
    deliver(b, 10, msg_boot_req("a", 1, true, abc, 2));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 0, false, true);
    m = mark(b);
    deliver(b, 10, msg_boot_req("a", 1, true, NULL, 0));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 0, false, true);
    m = mark(b);
    deliver(b, 10, msg_boot_req("a", 1, true, abc, 3));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 1, true, true);

    m = mark(b);
    deliver(b, 11, msg_boot_req("a", 1, false, abd, 3));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 1, false, false);
    m = mark(b);
    deliver(b, 12, msg_boot_req("a", 1, false, abc, 3));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "a"), 1, true, false);
    assert_string_equal(nth(b, m, REC_STATE, 0)->hs.voted_for, "a");
    /* The vote did not overwrite the sticky bootstrap list. */
    assert_int_equal(nth(b, m, REC_STATE, 0)->hs.n_bootstrap, 3);
    assert_string_equal(nth(b, m, REC_STATE, 0)->hs.bootstrap[2], "c");

    /* A replica that has not chosen its list yet cannot vouch for any. */
    struct core_options oc = opts("c");
    struct harness *c = start(w, 1, &oc, NULL, NULL, 0, 0);
    peer_up(c, 0, "a");
    deliver(c, 10, msg_boot_req("a", 1, true, abc, 3));
    assert_vote_resp(sent(c, 0, CORE_MSG_VOTE_RESPONSE, "a"), 0, false, true);
}

/* Three real cores: the first primary needs every member of the initial
 * configuration; its entry 1 is that configuration, committed by a majority. */
static void test_first_primary_writes_config(void **state)
{
    struct world *w = *state;
    const char *ids[] = {"a", "b", "c"};
    struct harness *h[3];
    struct core_options o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = opts(ids[i]);
        w->h[i].rnd = (uint64_t)i * 100; /* deadlines 300, 400, 500 */
        h[i] = start(w, i, &o[i], NULL, NULL, 0, 0);
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            if (i != j) {
                peer_up(h[i], 0, ids[j]);
            }
        }
    }
    struct harness *a = h[0], *b = h[1], *c = h[2];

    /* c unreachable: b's pre-vote alone is not enough while bootstrapping. */
    w->cut[2] = true;
    tick(a, EMIN);
    route(w, EMIN);
    assert_int_equal(core_role(a->core), CORE_CANDIDATE);
    assert_int_equal(core_epoch(a->core), 0);
    assert_null(find_event(a, 0, "election_started"));

    w->cut[2] = false;
    tick(a, 2 * EMIN);
    route(w, 2 * EMIN);
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_int_equal(core_epoch(a->core), 1);
    const struct core_entry *e1 = core_entry_at(a->core, 1);
    assert_non_null(e1);
    assert_int_equal(e1->epoch, 1);
    assert_string_equal(e1->client_id, "");
    char text[256];
    config_text(e1, text, sizeof(text));
    assert_string_equal(text, "v a,v b,v c");
    /* Routing delivered it everywhere: committed on a. */
    assert_int_equal(core_commit_index(a->core), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(core_last_index(h[i]->core), 1);
        assert_disk_matches(h[i]);
    }
    assert_int_equal(core_role(b->core), CORE_BACKUP);
    assert_int_equal(core_role(c->core), CORE_BACKUP);
}

/* The same, but the commit needs only a majority once entry 1 exists. */
static void test_first_config_commits_on_majority(void **state)
{
    struct world *w = *state;
    const char *ids[] = {"a", "b", "c"};
    struct harness *h[3];
    struct core_options o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = opts(ids[i]);
        w->h[i].rnd = (uint64_t)i * 100;
        h[i] = start(w, i, &o[i], NULL, NULL, 0, 0);
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            if (i != j) {
                peer_up(h[i], 0, ids[j]);
            }
        }
    }
    struct harness *a = h[0], *b = h[1], *c = h[2];

    /* Hop by hop until c's vote makes a primary, then c is cut off before
     * its first Append reaches it: b's ack alone must commit entry 1. */
    tick(a, EMIN);
    for (int hop = 0; core_role(a->core) != CORE_PRIMARY; hop++) {
        assert_true(hop < 10);
        route_once(w, EMIN);
    }
    assert_int_equal(core_commit_index(a->core), 0);
    size_t m = mark(a);
    w->cut[2] = true;
    route(w, EMIN);
    assert_int_equal(core_commit_index(a->core), 1);
    struct rec *ev = find_event(a, m, "committed");
    assert_non_null(ev);
    assert_int_equal(ev->index, 1);
    assert_int_equal(core_last_index(b->core), 1);
    assert_int_equal(core_last_index(c->core), 0);

    /* And later entries too, still without c. */
    m = mark(a);
    request(a, EMIN + 1, 1, "k", "v");
    route(w, EMIN + 1);
    assert_reply(find_reply(a, m, 1), CORE_REPLY_OK, 2, 1, "a");
    assert_int_equal(core_last_index(b->core), 2);
}

/* ========================================================================
 * 5. Replication, backup side
 * ====================================================================== */

static void test_append_gap_hints_last_plus_one(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[3];
    uint64_t epochs[] = {1, 1, 1};
    abc_log(log, epochs, 3);
    struct harness *b = start(w, 0, &o, &hs, log, 3, 0);

    struct core_entry e8 = ent(8, 2, CORE_ENTRY_DATA, "", "z");
    deliver(b, 10, msg_append("a", 2, 7, 2, 5, &e8, 1));
    assert_append_resp(sent(b, 0, CORE_MSG_APPEND_RESPONSE, "a"), 2, false, 0, 4);
    /* The adopted epoch is durable before the response that carries it. */
    struct rec *st = nth(b, 0, REC_STATE, 0);
    assert_non_null(st);
    assert_int_equal(st->hs.epoch, 2);
    assert_true(st->seq < sent(b, 0, CORE_MSG_APPEND_RESPONSE, "a")->seq);
    assert_int_equal(count(b, 0, REC_ENTRIES), 0);
    assert_int_equal(core_last_index(b->core), 3);
    assert_int_equal(core_commit_index(b->core), 0);
    assert_string_equal(core_primary(b->core), "a");
}

static void test_append_conflict_hints_epoch_start(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(2, "");
    struct core_entry log[5];
    uint64_t epochs[] = {1, 1, 2, 2, 2};
    abc_log(log, epochs, 5);
    struct harness *b = start(w, 0, &o, &hs, log, 5, 0);

    deliver(b, 10, msg_append("x", 3, 5, 3, 0, NULL, 0));
    assert_append_resp(sent(b, 0, CORE_MSG_APPEND_RESPONSE, "x"), 3, false, 0, 3);
    assert_int_equal(count(b, 0, REC_ENTRIES), 0);
    assert_log_epochs(b, epochs, 5);

    /* The hint never reaches back into committed entries. */
    struct harness *b2 = start(w, 1, &o, &hs, log, 5, 0);
    deliver(b2, 10, msg_append("a", 2, 4, 2, 4, NULL, 0));
    assert_int_equal(core_commit_index(b2->core), 4);
    size_t m = mark(b2);
    deliver(b2, 20, msg_append("x", 3, 5, 3, 0, NULL, 0));
    assert_append_resp(sent(b2, m, CORE_MSG_APPEND_RESPONSE, "x"), 3, false, 0, 5);
}

/* b: [1:CONFIG@1, 2:@1, 3:@2, 4:@2], epoch 2. */
static struct harness *diverged_b(struct world *w, int slot)
{
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(2, "");
    struct core_entry log[4];
    uint64_t epochs[] = {1, 1, 2, 2};
    abc_log(log, epochs, 4);
    return start(w, slot, &o, &hs, log, 4, 0);
}

static void test_append_truncates_conflict(void **state)
{
    struct world *w = *state;
    struct harness *b = diverged_b(w, 0);
    struct core_entry es[] = {
        ent(3, 3, CORE_ENTRY_DATA, "x3", "three"),
        ent(4, 3, CORE_ENTRY_DATA, "x4", "four"),
        ent(5, 3, CORE_ENTRY_DATA, "x5", "five"),
    };

    deliver(b, 10, msg_append("a", 3, 2, 1, 2, es, 3));
    assert_append_resp(sent(b, 0, CORE_MSG_APPEND_RESPONSE, "a"), 3, true, 5, 0);
    assert_int_equal(count(b, 0, REC_ENTRIES), 1);
    struct rec *pe = nth(b, 0, REC_ENTRIES, 0);
    assert_int_equal(pe->truncate_from, 3);
    assert_int_equal(pe->n_entries, 3);
    assert_int_equal(pe->entries[0].index, 3);
    assert_int_equal(pe->entries[2].index, 5);
    /* The response that reports the match comes after the write. */
    assert_true(pe->seq < sent(b, 0, CORE_MSG_APPEND_RESPONSE, "a")->seq);
    uint64_t want[] = {1, 1, 3, 3, 3};
    assert_log_epochs(b, want, 5);
    assert_int_equal(core_commit_index(b->core), 2);
    assert_string_equal(core_entry_at(b->core, 4)->client_id, "x4");
    assert_int_equal(core_entry_at(b->core, 4)->len, 4);
    assert_memory_equal(core_entry_at(b->core, 4)->data, "four", 4);
    assert_disk_matches(b);
}

/* A duplicated or reordered Append that agrees with the log must not cut off
 * what a later one added. */
static void test_append_duplicate_does_not_truncate(void **state)
{
    struct world *w = *state;
    struct harness *b = diverged_b(w, 0);
    struct core_entry es[] = {
        ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC), ent(2, 1, CORE_ENTRY_DATA, "", "x"),
        ent(3, 3, CORE_ENTRY_DATA, "", "x"),       ent(4, 3, CORE_ENTRY_DATA, "", "x"),
        ent(5, 3, CORE_ENTRY_DATA, "", "x"),
    };
    deliver(b, 10, msg_append("a", 3, 2, 1, 0, &es[2], 3));
    size_t m = mark(b);

    deliver(b, 11, msg_append("a", 3, 2, 1, 0, &es[2], 1)); /* late: only entry 3 */
    assert_append_resp(sent(b, m, CORE_MSG_APPEND_RESPONSE, "a"), 3, true, 3, 0);
    deliver(b, 12, msg_append("a", 3, 0, 0, 0, es, 5)); /* a full resend */
    assert_append_resp(last_sent(b, m, CORE_MSG_APPEND_RESPONSE, "a"), 3, true, 5, 0);
    deliver(b, 13, msg_append("a", 3, 3, 3, 0, &es[3], 1));
    assert_append_resp(last_sent(b, m, CORE_MSG_APPEND_RESPONSE, "a"), 3, true, 4, 0);
    assert_int_equal(count(b, m, REC_ENTRIES), 0);
    uint64_t want[] = {1, 1, 3, 3, 3};
    assert_log_epochs(b, want, 5);
    assert_disk_matches(b);
}

/* commit = min(leader commit, last entry this Append vouched for): a stale
 * tail beyond it is never committed, even when the leader's commit covers
 * those indices. */
static void test_append_commit_is_min_leader_commit_last_new(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(2, "");
    struct core_entry log[5];
    uint64_t epochs[] = {1, 1, 1, 2, 2}; /* 4 and 5 are a deposed primary's */
    abc_log(log, epochs, 5);
    struct harness *b = start(w, 0, &o, &hs, log, 5, 0);

    deliver(b, 10, msg_append("a", 3, 3, 1, 5, NULL, 0)); /* heartbeat, primary's commit 5 */
    assert_append_resp(sent(b, 0, CORE_MSG_APPEND_RESPONSE, "a"), 3, true, 3, 0);
    assert_int_equal(core_commit_index(b->core), 3);

    struct core_entry es[] = {ent(4, 3, CORE_ENTRY_DATA, "", "x"),
                              ent(5, 3, CORE_ENTRY_DATA, "", "x")};
    deliver(b, 11, msg_append("a", 3, 3, 1, 4, es, 2));
    assert_int_equal(core_commit_index(b->core), 4);
    deliver(b, 12, msg_append("a", 3, 5, 3, 9, NULL, 0));
    assert_int_equal(core_commit_index(b->core), 5);
    /* A late Append with an older commit does not move it back. */
    deliver(b, 13, msg_append("a", 3, 3, 1, 2, es, 1));
    assert_int_equal(core_commit_index(b->core), 5);
    uint64_t want[] = {1, 1, 1, 3, 3};
    assert_log_epochs(b, want, 5);
    assert_disk_matches(b);
}

static void test_append_stale_epoch_refused(void **state)
{
    struct world *w = *state;
    struct harness *b = diverged_b(w, 0);
    struct core_entry e3 = ent(3, 3, CORE_ENTRY_DATA, "", "x");
    deliver(b, 10, msg_append("a", 3, 2, 1, 0, &e3, 1)); /* b follows a in epoch 3 */
    assert_int_equal(core_last_index(b->core), 3);
    size_t m = mark(b);

    struct core_entry stale = ent(4, 2, CORE_ENTRY_DATA, "", "old");
    deliver(b, 20, msg_append("z", 2, 3, 3, 4, &stale, 1));
    struct rec *r = sent(b, m, CORE_MSG_APPEND_RESPONSE, "z");
    assert_non_null(r);
    assert_int_equal(r->msg.epoch, 3);
    assert_false(r->msg.append_response.success);
    assert_int_equal(count(b, m, REC_ENTRIES), 0);
    assert_int_equal(count(b, m, REC_STATE), 0);
    assert_string_equal(core_primary(b->core), "a");
    assert_int_equal(core_last_index(b->core), 3);
    assert_int_equal(core_commit_index(b->core), 0);
}

/* ========================================================================
 * 6. Primary: commit and stepping down
 * ====================================================================== */

/* An entry of an older epoch held by a majority is not committed on its
 * own (dissertation 3.6.2, figure 3.7); the new primary's NOOP commits it. */
static void test_commit_needs_current_epoch(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[2];
    uint64_t epochs[] = {1, 1};
    abc_log(log, epochs, 2);
    struct harness *a = elect(w, 0, &o, &hs, log, 2, "b", "c", "b", 1000);
    assert_int_equal(core_last_index(a->core), 3); /* its NOOP, epoch 2 */
    assert_int_equal(core_commit_index(a->core), 0);
    size_t m = mark(a);

    deliver(a, 1010, msg_append_resp("b", 2, true, 2, 0));
    assert_int_equal(core_commit_index(a->core), 0);
    assert_null(find_event(a, m, "committed"));

    deliver(a, 1020, msg_append_resp("b", 2, true, 3, 0));
    assert_int_equal(core_commit_index(a->core), 3);
    struct rec *ev = find_event(a, m, "committed");
    assert_non_null(ev);
    assert_int_equal(ev->index, 3);

    /* The commit reaches b with the next heartbeat. */
    m = mark(a);
    tick(a, 1000 + HB);
    assert_int_equal(sent(a, m, CORE_MSG_APPEND, "b")->msg.append.commit_index, 3);
}

static void test_step_down_on_higher_epoch_response(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    deliver(a, 1001, msg_append_resp("b", 2, true, 2, 0));
    request(a, 1002, 7, "k", "v");
    size_t m = mark(a);

    deliver(a, 1003, msg_append_resp("b", 5, false, 0, 0));
    assert_int_equal(core_role(a->core), CORE_BACKUP);
    assert_int_equal(core_epoch(a->core), 5);
    struct rec *st = nth(a, m, REC_STATE, 0);
    assert_non_null(st);
    assert_int_equal(st->hs.epoch, 5);
    assert_string_equal(st->hs.voted_for, "");
    assert_non_null(find_event(a, m, "stepped_down"));
    assert_int_equal(count_replies(a, 0, 7), 1);
    assert_int_equal(find_reply(a, m, 7)->reply.status, CORE_REPLY_UNKNOWN);

    m = mark(a);
    request(a, 1004, 8, "k2", "v");
    assert_reply(find_reply(a, m, 8), CORE_REPLY_NOT_PRIMARY, 0, 5, "");
    assert_int_equal(count(a, m, REC_ENTRIES), 0);
}

/* A new primary's Append deposes the old one: pending requests become
 * UNKNOWN (the entry may still commit), and it follows the new primary. */
static void test_step_down_on_newer_append(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    request(a, 1002, 7, "k", "v");
    size_t m = mark(a);

    deliver(a, 1003, msg_append("c", 3, 2, 2, 2, NULL, 0));
    assert_int_equal(core_role(a->core), CORE_BACKUP);
    assert_string_equal(core_primary(a->core), "c");
    assert_int_equal(core_epoch(a->core), 3);
    assert_non_null(find_event(a, m, "stepped_down"));
    assert_int_equal(find_reply(a, m, 7)->reply.status, CORE_REPLY_UNKNOWN);
    assert_append_resp(sent(a, m, CORE_MSG_APPEND_RESPONSE, "c"), 3, true, 2, 0);
    /* The UNKNOWN is sent before anything else leaves for the new primary. */
    assert_true(find_reply(a, m, 7)->seq < sent(a, m, CORE_MSG_APPEND_RESPONSE, "c")->seq);
}

/* ========================================================================
 * 7. Check-quorum
 * ====================================================================== */

static void test_check_quorum_steps_down(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    size_t m = mark(a);

    tick(a, 1000 + HB - 1);
    assert_int_equal(mark(a), m);
    assert_int_equal(core_next_deadline(a->core), 1000 + HB);
    for (int64_t t = 1000 + HB; t < 1000 + EMIN; t += HB) {
        size_t mm = mark(a);
        tick(a, t);
        assert_int_equal(core_role(a->core), CORE_PRIMARY);
        assert_non_null(sent(a, mm, CORE_MSG_APPEND, "b")); /* heartbeats keep going */
        assert_non_null(sent(a, mm, CORE_MSG_APPEND, "c"));
        if (t == 1000 + 4 * HB) {
            request(a, t, 1, "k", "v"); /* pending when the quorum is lost */
        }
    }

    m = mark(a);
    tick(a, 1000 + EMIN);
    assert_int_equal(core_role(a->core), CORE_BACKUP);
    assert_string_equal(core_primary(a->core), "");
    struct rec *ev = find_event(a, m, "stepped_down");
    assert_non_null(ev);
    assert_string_equal(ev->subject, "a");
    assert_int_equal(find_reply(a, m, 1)->reply.status, CORE_REPLY_UNKNOWN);
    assert_int_equal(count_sends(a, m, CORE_MSG_APPEND), 0);
    assert_int_equal(core_epoch(a->core), 2);

    m = mark(a);
    request(a, 1000 + EMIN, 2, "k2", "v");
    assert_reply(find_reply(a, m, 2), CORE_REPLY_NOT_PRIMARY, 0, 2, "");
}

/* One backup's acks are a majority with the primary; the window runs from
 * the last of them. */
static void test_check_quorum_counts_from_last_ack(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);

    tick(a, 1000 + HB);
    deliver(a, 1100, msg_append_resp("b", 2, true, 2, 0));
    for (int64_t t = 1100; t < 1100 + EMIN; t += HB) {
        tick(a, t);
        assert_int_equal(core_role(a->core), CORE_PRIMARY);
    }
    tick(a, 1100 + EMIN - 1);
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    size_t m = mark(a);
    tick(a, 1100 + EMIN);
    assert_int_equal(core_role(a->core), CORE_BACKUP);
    assert_non_null(find_event(a, m, "stepped_down"));
}

/* A request arriving after the window but before the next tick is refused
 * too: the primary never answers OK once it may have been replaced. */
static void test_check_quorum_on_request_between_ticks(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    tick(a, 1000 + EMIN - HB);
    size_t m = mark(a);

    request(a, 1000 + EMIN + 1, 1, "k", "v");
    assert_reply(find_reply(a, m, 1), CORE_REPLY_NOT_PRIMARY, 0, 2, "");
    assert_non_null(find_event(a, m, "stepped_down"));
    assert_int_equal(count(a, m, REC_ENTRIES), 0);
    assert_int_equal(core_role(a->core), CORE_BACKUP);
}

/* Slow motion (core_set_timing): a primary heartbeats at once and then at
 * the new pace, gets one new timeout's grace before check-quorum holds
 * acks to it, and steps down when that runs out without acks. */
static void test_set_timing_primary(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    tick(a, 1000 + HB);
    size_t m = mark(a);
    core_set_timing(a->core, 1100, 10 * HB, 10 * EMIN, 10 * EMAX);
    assert_int_equal(core_next_deadline(a->core), 1100);
    tick(a, 1100);
    assert_non_null(sent(a, m, CORE_MSG_APPEND, "b"));
    assert_int_equal(core_next_deadline(a->core), 1100 + 10 * HB);
    struct core_status st;
    core_get_status(a->core, 1100, &st);
    assert_int_equal(st.heartbeat_ms, 10 * HB);
    assert_int_equal(st.election_min_ms, 10 * EMIN);
    assert_int_equal(st.election_max_ms, 10 * EMAX);
    /* No ack since 1000: the old window would have ended at 1000 + EMIN. */
    for (int64_t t = 1100; t < 1100 + 10 * EMIN; t += 10 * HB) {
        tick(a, t);
        assert_int_equal(core_role(a->core), CORE_PRIMARY);
    }
    tick(a, 1100 + 10 * EMIN);
    assert_int_equal(core_role(a->core), CORE_BACKUP);
}

/* A backup's election timer starts over in the new range; 0 restores the
 * defaults. */
static void test_set_timing_backup(void **state)
{
    struct world *w = *state;
    struct harness *b = backup_b(w, 0, 1000);
    core_set_timing(b->core, 2000, 100, 1000, 2000);
    int64_t d = core_next_deadline(b->core);
    assert_in_range(d, 3000, 3999);
    tick(b, 2000 + EMAX); /* the old timeout would have fired by now */
    assert_int_equal(core_role(b->core), CORE_BACKUP);
    core_set_timing(b->core, 2000 + EMAX, 0, 0, 0);
    struct core_status st;
    core_get_status(b->core, 2000 + EMAX, &st);
    assert_int_equal(st.heartbeat_ms, 50);
    assert_int_equal(st.election_min_ms, 300);
    assert_int_equal(st.election_max_ms, 600);
    assert_in_range(core_next_deadline(b->core), 2000 + EMAX + 300, 2000 + EMAX + 599);
}

/* ========================================================================
 * 8. Client requests
 * ====================================================================== */

static void test_request_on_backup_names_primary(void **state)
{
    struct world *w = *state;
    struct harness *b = backup_b(w, 0, 1000);
    size_t m = mark(b);
    request(b, 1010, 1, "k", "v");
    assert_reply(find_reply(b, m, 1), CORE_REPLY_NOT_PRIMARY, 0, 1, "a");
    assert_int_equal(count(b, m, REC_ENTRIES), 0);
    assert_int_equal(count(b, m, REC_SEND), 0);
}

static void test_request_rejected(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    o.max_request_bytes = 8;
    struct harness *a = primary_a_opts(w, &o, 1000);
    char id127[128], id128[129];
    memset(id127, 'i', 127);
    id127[127] = '\0';
    memset(id128, 'i', 128);
    id128[128] = '\0';
    size_t m = mark(a);

    request(a, 1001, 1, "", "v");
    core_client_request(a->core, 1001, 2, NULL, (const uint8_t *)"v", 1, CORE_SEEN_UNKNOWN);
    drain(a, 1001);
    request(a, 1001, 3, id128, "v");
    request(a, 1001, 4, "big", "123456789");
    for (uint64_t t = 1; t <= 4; t++) {
        assert_reply(find_reply(a, m, t), CORE_REPLY_REJECTED, 0, 2, "a");
    }
    assert_int_equal(count(a, m, REC_ENTRIES), 0);
    assert_int_equal(core_last_index(a->core), 2);

    /* The limits themselves are allowed. */
    request(a, 1002, 5, id127, "v");
    request(a, 1002, 6, "max", "12345678");
    assert_int_equal(count(a, m, REC_ENTRIES), 2);
    assert_int_equal(core_last_index(a->core), 4);
    assert_null(find_reply(a, m, 5)); /* pending, not refused */
    assert_null(find_reply(a, m, 6));
}

static void test_retry_while_pending_appends_once(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    deliver(a, 1001, msg_append_resp("b", 2, true, 2, 0));
    assert_int_equal(core_commit_index(a->core), 2);
    size_t m = mark(a);

    request(a, 1002, 1, "x", "hello");
    assert_int_equal(count(a, m, REC_ENTRIES), 1);
    struct rec *pe = nth(a, m, REC_ENTRIES, 0);
    assert_int_equal(pe->entries[0].index, 3);
    assert_int_equal(pe->entries[0].type, CORE_ENTRY_DATA);
    assert_string_equal(pe->entries[0].client_id, "x");
    assert_string_equal(pe->entries[0].primary, "a");
    assert_memory_equal(pe->entries[0].data, "hello", 5);
    request(a, 1003, 2, "x", "hello");
    assert_int_equal(count(a, m, REC_ENTRIES), 1);
    assert_int_equal(core_last_index(a->core), 3);
    assert_int_equal(count(a, m, REC_REPLY), 0); /* nothing acknowledged early */

    deliver(a, 1004, msg_append_resp("c", 2, true, 3, 0));
    assert_reply(find_reply(a, m, 1), CORE_REPLY_OK, 3, 2, "a");
    assert_reply(find_reply(a, m, 2), CORE_REPLY_OK, 3, 2, "a");
    assert_int_equal(count(a, m, REC_REPLY), 2);

    /* After the commit a retry is answered at once from the log. */
    m = mark(a);
    request(a, 1005, 3, "x", "hello");
    assert_reply(find_reply(a, m, 3), CORE_REPLY_OK, 3, 2, "a");
    assert_int_equal(count(a, m, REC_ENTRIES), 0);
    assert_int_equal(core_last_index(a->core), 3);
    struct core_status st;
    core_get_status(a->core, 1005, &st);
    assert_int_equal(st.processed, 1); /* one data entry, counted once */
    assert_int_equal(st.synced, 0);
}

/* The primary's Appends leave before its own fsync, so a backup can ack an
 * entry the primary's disk does not hold yet. With the third voter down,
 * that ack plus the primary's unsynced copy is not a majority on disk: no
 * acknowledgement until the primary's own sync returns. */
static void test_slow_primary_disk_never_acks_early(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    deliver(a, 1001, msg_append_resp("b", 2, true, 2, 0));
    assert_int_equal(core_commit_index(a->core), 2);
    a->slow_disk = true;
    size_t m = mark(a);
    request(a, 1002, 1, "x", "hello");
    flush(a, 1002);
    struct rec *r = sent(a, m, CORE_MSG_APPEND, "b");
    assert_non_null(r);
    assert_true(r->early); /* on the wire before the primary's fsync */
    deliver(a, 1003, msg_append_resp("b", 2, true, 3, 0));
    assert_int_equal(core_commit_index(a->core), 2);
    assert_null(find_reply(a, m, 1));
    assert_int_equal(core_durable_index(a->core), 2);
    a->slow_disk = false;
    confirm(a, 1004);
    assert_int_equal(core_durable_index(a->core), 3);
    assert_int_equal(core_commit_index(a->core), 3);
    assert_reply(find_reply(a, m, 1), CORE_REPLY_OK, 3, 2, "a");
}

/* A client id names one write. Reused for other data, pending or committed,
 * it is refused with the original index and the log does not change. */
static void test_retry_with_other_data_conflicts(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    deliver(a, 1001, msg_append_resp("b", 2, true, 2, 0));
    size_t m = mark(a);

    request(a, 1002, 1, "x", "hello");
    request(a, 1003, 2, "x", "other"); /* while pending */
    assert_reply(find_reply(a, m, 2), CORE_REPLY_CONFLICT, 3, 2, "a");
    request(a, 1003, 3, "x", "hell"); /* a prefix is other data too */
    assert_reply(find_reply(a, m, 3), CORE_REPLY_CONFLICT, 3, 2, "a");
    assert_int_equal(count(a, m, REC_ENTRIES), 1);

    deliver(a, 1004, msg_append_resp("c", 2, true, 3, 0));
    assert_reply(find_reply(a, m, 1), CORE_REPLY_OK, 3, 2, "a");
    m = mark(a);
    request(a, 1005, 4, "x", "other"); /* after the commit */
    assert_reply(find_reply(a, m, 4), CORE_REPLY_CONFLICT, 3, 2, "a");
    request(a, 1005, 5, "x", "hello");
    assert_reply(find_reply(a, m, 5), CORE_REPLY_OK, 3, 2, "a");
    assert_int_equal(count(a, m, REC_ENTRIES), 0);
    assert_int_equal(core_last_index(a->core), 3);
}

/* Client ids are checked by the core too: the simulator and any adapter
 * reach it without the wire's validation. */
static void test_client_id_alphabet(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    size_t m = mark(a);
    request(a, 1001, 1, "a\nb", "x");
    request(a, 1001, 2, "\xff", "x");
    request(a, 1001, 3, "", "x");
    for (uint64_t t = 1; t <= 3; t++) {
        assert_int_equal(find_reply(a, m, t)->reply.status, CORE_REPLY_REJECTED);
    }
    request(a, 1001, 4, "caf\xc3\xa9", "x"); /* UTF-8 is fine */
    assert_null(find_reply(a, m, 4));
    assert_int_equal(count(a, m, REC_ENTRIES), 1);
}

/* The entry a deposed primary replicated is found by the new primary: a retry
 * there waits for it instead of applying the request a second time. */
static void test_retry_after_failover_applies_once(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(2, "a");
    struct core_entry log[] = {
        ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC),
        ent(2, 2, CORE_ENTRY_NOOP, "", NULL),
        ent(3, 2, CORE_ENTRY_DATA, "x", "hello"),
    };
    struct harness *b = elect(w, 0, &o, &hs, log, 3, "a", "c", "c", 1000);
    assert_int_equal(core_last_index(b->core), 4);
    size_t m = mark(b);

    request(b, 1001, 9, "x", "hello");
    assert_int_equal(count(b, m, REC_ENTRIES), 0);
    assert_null(find_reply(b, m, 9));
    deliver(b, 1002, msg_append_resp("c", 3, true, 4, 0));
    assert_reply(find_reply(b, m, 9), CORE_REPLY_OK, 3, 2, "a");
    assert_int_equal(count_replies(b, m, 9), 1);
    /* a processed it; b only received it. */
    struct core_status st;
    core_get_status(b->core, 1002, &st);
    assert_int_equal(st.processed, 0);
    assert_int_equal(st.synced, 1);
}

/* Requests between two flushes travel in one Append per peer, each entry
 * durable before the Append that carries it. */
static void test_requests_batched_per_flush(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    deliver(a, 1001, msg_append_resp("b", 2, true, 2, 0));
    size_t m = mark(a);

    request(a, 1002, 1, "x", "one");
    request(a, 1002, 2, "y", "two");
    assert_int_equal(count_sends(a, m, CORE_MSG_APPEND), 0); /* nothing before the flush */
    flush(a, 1002);
    assert_int_equal(count_sends(a, m, CORE_MSG_APPEND), 2);
    struct rec *r = sent(a, m, CORE_MSG_APPEND, "b");
    assert_non_null(r);
    assert_int_equal(r->msg.append.prev_index, 2);
    assert_int_equal(r->msg.append.prev_epoch, 2);
    assert_int_equal(r->msg.append.commit_index, 2);
    assert_int_equal(r->msg.append.n_entries, 2);
    assert_string_equal(r->entries[0].client_id, "x");
    assert_string_equal(r->entries[1].client_id, "y");
    assert_memory_equal(r->entries[1].data, "two", 3);
    assert_true(nth(a, m, REC_ENTRIES, 1)->seq < r->seq);

    /* Nothing new: a second flush sends nothing. */
    m = mark(a);
    flush(a, 1003);
    assert_int_equal(count_sends(a, m, CORE_MSG_APPEND), 0);
}

/* A backup whose connection was re-established may have lost what was in
 * flight: the primary resends from what it acknowledged. */
static void test_reconnected_peer_gets_resend(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    deliver(a, 1001, msg_append_resp("b", 2, true, 2, 0));
    request(a, 1002, 1, "x", "one");
    flush(a, 1002); /* entry 3 leaves for b, and is lost */
    size_t m = mark(a);

    peer_up(a, 1003, "b");
    flush(a, 1003);
    struct rec *r = sent(a, m, CORE_MSG_APPEND, "b");
    assert_non_null(r);
    assert_int_equal(r->msg.append.prev_index, 2);
    assert_int_equal(r->msg.append.n_entries, 1);
    assert_int_equal(r->entries[0].index, 3);
    assert_null(sent(a, m, CORE_MSG_APPEND, "c")); /* c's stream is untouched */
}

/* Membership is the latest CONFIG in the log, committed or not: when a
 * conflicting Append truncates it, the previous configuration is back. */
static void test_truncated_config_reverts_membership(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("b");
    struct core_hard_state hs = hstate(2, "");
    struct core_entry log[] = {
        ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC),
        ent(2, 2, CORE_ENTRY_CONFIG, "", "v a\nv b\nv c\nv d\n"),
    };
    struct harness *b = start(w, 0, &o, &hs, log, 2, 0);
    peer_up(b, 0, "d");
    struct core_status st;
    core_get_status(b->core, 0, &st);
    assert_int_equal(st.n_peers, 1);
    assert_true(st.peers[0].voter);

    struct core_entry noop = ent(2, 3, CORE_ENTRY_NOOP, "", NULL);
    deliver(b, 10, msg_append("c", 3, 1, 1, 0, &noop, 1));
    assert_int_equal(nth(b, 0, REC_ENTRIES, 0)->truncate_from, 2);
    core_get_status(b->core, 10, &st);
    assert_false(st.peers[0].member);
    assert_false(st.peers[0].voter);
    assert_true(st.voter);
}

/* Votes for another round or phase are not counted: a real-vote grant does
 * not complete a pre-vote, nor a late pre-vote or an old epoch's grant a
 * real vote. */
static void test_stale_votes_not_counted(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[1] = {ent(1, 1, CORE_ENTRY_CONFIG, "", CFG_ABC)};
    struct harness *a = start(w, 0, &o, &hs, log, 1, 0);
    peer_up(a, 0, "b");
    peer_up(a, 0, "c");
    tick(a, EMIN); /* pre-vote for epoch 2 */

    deliver(a, EMIN + 1, msg_vote_resp("b", 1, true, false)); /* an epoch-1 round's vote */
    deliver(a, EMIN + 1, msg_vote_resp("c", 1, true, true));  /* a pre-vote for epoch 1 */
    assert_int_equal(core_role(a->core), CORE_CANDIDATE);
    assert_int_equal(core_epoch(a->core), 1);
    assert_int_equal(count(a, 0, REC_STATE), 0);

    deliver(a, EMIN + 2, msg_vote_resp("b", 2, true, true)); /* real vote, epoch 2 */
    assert_int_equal(core_epoch(a->core), 2);
    deliver(a, EMIN + 3, msg_vote_resp("c", 2, true, true));  /* a late pre-vote */
    deliver(a, EMIN + 3, msg_vote_resp("c", 1, true, false)); /* an old epoch's vote */
    assert_int_equal(core_role(a->core), CORE_CANDIDATE);
    deliver(a, EMIN + 4, msg_vote_resp("b", 2, true, false));
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
}

/* ========================================================================
 * 9. Fast failover
 * ====================================================================== */

static void test_peer_down_primary_elects_soon(void **state)
{
    struct world *w = *state;
    w->h[0].rnd = 1234; /* 34 into the timeout span, 34 into 2 * HB */
    struct harness *b = backup_b(w, 0, 1000);
    assert_int_equal(core_next_deadline(b->core), 1000 + EMIN + 34);
    size_t m = mark(b);

    peer_down(b, 1010, "a");
    assert_int_equal(core_next_deadline(b->core), 1010 + 34);
    assert_true(core_next_deadline(b->core) < 1010 + 2 * HB);
    struct rec *ev = find_event(b, m, "primary_lost");
    assert_non_null(ev);
    assert_string_equal(ev->subject, "a");
    assert_int_equal(count(b, m, REC_SEND), 0);

    /* Announced once, however many times the adapter repeats it. */
    peer_down(b, 1020, "a");
    assert_int_equal(count_events(b, m, "primary_lost"), 1);
    assert_int_equal(core_next_deadline(b->core), 1010 + 34);

    tick(b, 1010 + 33);
    assert_int_equal(count(b, m, REC_SEND), 0);
    tick(b, 1010 + 34);
    struct rec *r = sent(b, m, CORE_MSG_VOTE_REQUEST, "c");
    assert_non_null(r);
    assert_true(r->msg.vote_request.pre_vote);
    assert_int_equal(r->msg.epoch, 2);
}

static void test_peer_down_other_peer_changes_nothing(void **state)
{
    struct world *w = *state;
    struct harness *b = backup_b(w, 0, 1000);
    int64_t deadline = core_next_deadline(b->core);
    size_t m = mark(b);

    peer_down(b, 1010, "c");
    peer_down(b, 1010, "nobody");
    assert_int_equal(core_next_deadline(b->core), deadline);
    assert_int_equal(mark(b), m);
    assert_string_equal(core_primary(b->core), "a");
    /* The lease on a still holds. */
    deliver(b, 1020, msg_vote_req("c", 2, 1, 1, true));
    assert_vote_resp(sent(b, m, CORE_MSG_VOTE_RESPONSE, "c"), 1, false, true);
}

/* ========================================================================
 * 10. Learners
 * ====================================================================== */

static void test_learner_added_then_promoted(void **state)
{
    struct world *w = *state;
    struct harness *a = primary_a(w, 1000);
    char text[256];
    size_t m = mark(a);

    /* Not before the epoch's first entry is committed. */
    peer_up(a, 1001, "d");
    tick(a, 1002);
    assert_int_equal(core_last_index(a->core), 2);
    assert_null(find_event(a, m, "joined"));
    assert_int_equal(count(a, m, REC_ENTRIES), 0);

    deliver(a, 1003, msg_append_resp("b", 2, true, 2, 0));
    assert_int_equal(core_commit_index(a->core), 2);
    assert_int_equal(core_last_index(a->core), 3);
    config_text(core_entry_at(a->core, 3), text, sizeof(text));
    assert_string_equal(text, "v a,v b,v c,l d");
    struct rec *ev = find_event(a, m, "joined");
    assert_non_null(ev);
    assert_string_equal(ev->subject, "d");
    assert_int_equal(ev->index, 3);

    /* The learner now gets Appends; it backtracks from its empty log. */
    size_t mm = mark(a);
    flush(a, 1004);
    struct rec *r = sent(a, mm, CORE_MSG_APPEND, "d");
    assert_non_null(r);
    assert_int_equal(r->msg.append.prev_index, 2);
    deliver(a, 1005, msg_append_resp("d", 2, false, 0, 1));
    mm = mark(a);
    flush(a, 1005);
    r = sent(a, mm, CORE_MSG_APPEND, "d");
    assert_non_null(r);
    assert_int_equal(r->msg.append.prev_index, 0);
    assert_int_equal(r->msg.append.n_entries, 3);

    /* Its config committed by the voters, the learner still lags: no promotion. */
    deliver(a, 1006, msg_append_resp("b", 2, true, 3, 0));
    assert_int_equal(core_commit_index(a->core), 3);
    deliver(a, 1007, msg_append_resp("d", 2, true, 2, 0));
    tick(a, 1008);
    assert_null(find_event(a, m, "caught_up"));
    assert_int_equal(core_last_index(a->core), 3);

    deliver(a, 1009, msg_append_resp("d", 2, true, 3, 0));
    ev = find_event(a, m, "caught_up");
    assert_non_null(ev);
    assert_string_equal(ev->subject, "d");
    assert_int_equal(ev->index, 4);
    config_text(core_entry_at(a->core, 4), text, sizeof(text));
    assert_string_equal(text, "v a,v b,v c,v d");

    /* Four voters: 3 is a majority, so b's ack alone no longer commits. */
    deliver(a, 1010, msg_append_resp("b", 2, true, 4, 0));
    assert_int_equal(core_commit_index(a->core), 3);
    deliver(a, 1011, msg_append_resp("d", 2, true, 4, 0));
    assert_int_equal(core_commit_index(a->core), 4);
    assert_disk_matches(a);
}

static void test_learner_never_campaigns(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("d");
    struct core_hard_state hs = hstate(1, "");
    struct core_entry log[1] = {ent(1, 1, CORE_ENTRY_CONFIG, "", "v a\nv b\nv c\nl d\n")};
    struct harness *d = start(w, 0, &o, &hs, log, 1, 0);
    peer_up(d, 0, "a");
    peer_up(d, 0, "b");
    peer_up(d, 0, "c");
    assert_int_equal(core_role(d->core), CORE_LEARNER);

    for (int64_t t = 0; t <= 10 * EMAX; t++) {
        if (core_next_deadline(d->core) <= t) {
            tick(d, t);
        }
    }
    assert_int_equal(mark(d), 0);
    assert_int_equal(core_epoch(d->core), 1);

    /* Its primary vanishing is reported but schedules no election. */
    deliver(d, 7000, msg_append("a", 1, 1, 1, 1, NULL, 0));
    int64_t deadline = core_next_deadline(d->core);
    size_t m = mark(d);
    peer_down(d, 7010, "a");
    assert_non_null(find_event(d, m, "primary_lost"));
    assert_int_equal(core_next_deadline(d->core), deadline);
    tick(d, 7010 + 2 * HB);
    tick(d, deadline);
    assert_int_equal(count(d, m, REC_SEND), 0);
    assert_int_equal(core_role(d->core), CORE_LEARNER);
}

/* Four real cores: d arrives while a, b, c bootstrap. d's discovery has seen
 * only a and b, so its own list ([a, b, d]) differs from theirs; its early
 * campaign is refused, it joins as a learner and is promoted. */
static void test_learner_joins_live_cluster(void **state)
{
    struct world *w = *state;
    const char *ids[] = {"a", "b", "c", "d"};
    struct core_options o[4];
    for (int i = 0; i < 4; i++) {
        o[i] = opts(ids[i]);
    }
    w->h[0].rnd = 0; /* deadlines 300, 400, 500; d 200: it tries first */
    w->h[1].rnd = 100;
    w->h[2].rnd = 200;
    for (int i = 0; i < 3; i++) {
        start(w, i, &o[i], NULL, NULL, 0, 0);
    }
    start(w, 3, &o[3], NULL, NULL, 0, -100);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            if (i != j && !(i == 3 && j == 2)) {
                peer_up(&w->h[i], 0, ids[j]);
            }
        }
    }

    run(w, 0, 1000);
    struct harness *a = &w->h[0];
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_int_equal(core_epoch(a->core), 1);
    struct rec *tried = sent(&w->h[3], 0, CORE_MSG_VOTE_REQUEST, "a"); /* d did try */
    assert_non_null(tried);
    assert_string_equal(tried->msg.vote_request.bootstrap[2], "d");
    assert_non_null(find_event(a, 0, "joined"));
    assert_non_null(find_event(a, 0, "caught_up"));
    char text[256];
    config_text(core_entry_at(a->core, 3), text, sizeof(text));
    assert_string_equal(text, "v a,v b,v c,v d");
    for (int i = 0; i < 4; i++) {
        struct harness *h = &w->h[i];
        assert_int_equal(core_last_index(h->core), 3);
        assert_int_equal(core_commit_index(h->core), 3);
        assert_int_equal(core_epoch(h->core), 1);
        assert_string_equal(core_primary(h->core), "a");
        assert_int_equal(count_events(h, 0, "elected"), i == 0);
        assert_disk_matches(h);
    }
    assert_int_equal(core_role(w->h[3].core), CORE_BACKUP);
    struct core_status st;
    core_get_status(a->core, 1000, &st);
    assert_int_equal(st.n_peers, 3);
    for (unsigned i = 0; i < st.n_peers; i++) {
        assert_true(st.peers[i].voter);
        assert_int_equal(st.peers[i].match_index, 3);
    }
}

/* ========================================================================
 * 10b. Removing members, handing over, forced recovery
 * ====================================================================== */

/* a, b and c bootstrapped with a as primary of epoch 1 at t=1000 (their
 * deadlines 300, 400, 500: a goes first). dead_ms: the cleanup timeout. */
static struct harness *cluster_abc(struct world *w, unsigned dead_ms)
{
    static const char *ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct core_options o = opts(ids[i]);
        o.dead_member_timeout_ms = dead_ms;
        w->h[i].rnd = (uint64_t)i * 100;
        start(w, i, &o, NULL, NULL, 0, 0);
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            if (i != j) {
                peer_up(&w->h[i], 0, ids[j]);
            }
        }
    }
    run(w, 0, 1000);
    struct harness *a = &w->h[0];
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_true(core_commit_index(a->core) >= 1);
    return a;
}

/* The last CONFIG entry of h's log, as config_text spells it. */
static void last_config(const struct harness *h, char *buf, size_t cap)
{
    for (uint64_t i = core_last_index(h->core); i >= 1; i--) {
        const struct core_entry *e = core_entry_at(h->core, i);
        if (e->type == CORE_ENTRY_CONFIG) {
            config_text(e, buf, cap);
            return;
        }
    }
    fail_msg("no configuration in the log");
}

static void test_remove_backup_on_request(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    char text[256];
    size_t m = mark(a);
    core_remove_member(a->core, 1001, 7, "c");
    drain(a, 1001);
    struct rec *r = find_reply(a, m, 7);
    assert_reply(r, CORE_REPLY_OK, core_last_index(a->core), 1, "a");
    assert_non_null(find_event(a, m, "removed"));
    run(w, 1001, 1100);
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b,r c");
    assert_true(core_commit_index(a->core) >= r->reply.index);

    /* c was sent its removal and knows it is out; it never campaigns. */
    struct harness *c = &w->h[2];
    assert_int_equal(core_role(c->core), CORE_REMOVED);
    /* Two voters now: both must hold a write. */
    request(a, 1101, 8, "k", "v");
    run(w, 1101, 1200);
    assert_non_null(find_reply(a, m, 8));
    assert_int_equal(find_reply(a, m, 8)->reply.status, CORE_REPLY_OK);
    /* A removed replica that stays connected is never added back. */
    peer_up(a, 1201, "c");
    run(w, 1201, 5000);
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b,r c");
    assert_int_equal(core_role(c->core), CORE_REMOVED);
    assert_int_equal(core_epoch(c->core), 1);
    for (int i = 0; i < 2; i++) {
        assert_disk_matches(&w->h[i]);
    }
}

static void test_remove_refusals(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    size_t m = mark(a);
    core_remove_member(a->core, 1001, 1, "zz");
    drain(a, 1001);
    assert_int_equal(find_reply(a, m, 1)->reply.status, CORE_REPLY_NOT_FOUND);

    struct harness *b = &w->h[1];
    size_t mb = mark(b);
    core_remove_member(b->core, 1001, 2, "c");
    drain(b, 1001);
    assert_reply(find_reply(b, mb, 2), CORE_REPLY_NOT_PRIMARY, 0, 1, "a");

    /* One change at a time: the second waits for the first to commit. */
    core_remove_member(a->core, 1002, 3, "c");
    core_remove_member(a->core, 1002, 4, "b");
    drain(a, 1002);
    assert_int_equal(find_reply(a, m, 3)->reply.status, CORE_REPLY_OK);
    assert_int_equal(find_reply(a, m, 4)->reply.status, CORE_REPLY_BUSY);
    run(w, 1002, 1100);
    core_remove_member(a->core, 1100, 5, "b");
    drain(a, 1100);
    assert_int_equal(find_reply(a, m, 5)->reply.status, CORE_REPLY_OK);
    run(w, 1100, 1200);
    /* The last voter cannot go. */
    core_remove_member(a->core, 1200, 6, "a");
    drain(a, 1200);
    assert_int_equal(find_reply(a, m, 6)->reply.status, CORE_REPLY_NO_QUORUM);
    char text[256];
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,r c,r b");
}

static void test_remove_refused_without_majority(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    size_t m = mark(a);
    /* c is dead: a and b are the majority. Removing b would leave a and a
     * dead c: one of two reachable, no majority. */
    w->cut[2] = true;
    peer_down(a, 1001, "c");
    run(w, 1001, 1001 + EMIN);
    core_remove_member(a->core, 1001 + EMIN, 1, "b");
    drain(a, 1001 + EMIN);
    assert_int_equal(find_reply(a, m, 1)->reply.status, CORE_REPLY_NO_QUORUM);
    /* Removing the dead c is fine: a and b remain, both reachable. */
    core_remove_member(a->core, 1001 + EMIN, 2, "c");
    drain(a, 1001 + EMIN);
    assert_int_equal(find_reply(a, m, 2)->reply.status, CORE_REPLY_OK);
    run(w, 1001 + EMIN, 1400 + EMIN);
    char text[256];
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b,r c");
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
}

static void test_primary_removes_itself_and_hands_over(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    request(a, 1001, 1, "k1", "before");
    run(w, 1001, 1010);
    size_t m = mark(a);
    core_remove_member(a->core, 1010, 2, "a");
    drain(a, 1010);
    assert_int_equal(find_reply(a, m, 2)->reply.status, CORE_REPLY_OK);
    /* Until the handover, a takes no new request. */
    request(a, 1010, 3, "k2", "during");
    assert_int_equal(find_reply(a, m, 3)->reply.status, CORE_REPLY_NOT_PRIMARY);

    run(w, 1010, 1100);
    assert_non_null(find_event(a, m, "handover"));
    assert_int_not_equal(core_role(a->core), CORE_PRIMARY);
    assert_int_equal(core_role(a->core), CORE_REMOVED);
    /* A successor was elected at once (no election timeout waited out):
     * epoch 2, within 90 ms of the request. */
    int p = core_role(w->h[1].core) == CORE_PRIMARY ? 1 : 2;
    struct harness *np = &w->h[p];
    assert_int_equal(core_role(np->core), CORE_PRIMARY);
    assert_int_equal(core_epoch(np->core), 2);
    char text[256];
    last_config(np, text, sizeof(text));
    assert_string_equal(text, "v b,v c,r a");
    /* Everything a acknowledged is there, and writes go on. */
    size_t mp = mark(np);
    request(np, 1101, 4, "k3", "after");
    run(w, 1101, 1200);
    assert_int_equal(find_reply(np, mp, 4)->reply.status, CORE_REPLY_OK);
    bool found = false;
    for (uint64_t i = 1; i <= core_commit_index(np->core); i++) {
        const struct core_entry *e = core_entry_at(np->core, i);
        found |= e->type == CORE_ENTRY_DATA && strcmp(e->client_id, "k1") == 0;
    }
    assert_true(found);
    /* The removed replica never disturbs them. */
    run(w, 1200, 4000);
    assert_int_equal(core_epoch(np->core), 2);
    assert_int_equal(core_role(np->core), CORE_PRIMARY);
}

static void test_gone_member_removed_only_when_unlisted(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 2000);
    char text[256];
    /* c dies; discovery still lists it (restarting, paused): kept. */
    w->cut[2] = true;
    peer_down(a, 1001, "c");
    run(w, 1001, 6000);
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b,v c");
    /* Discovery drops it: gone after the timeout, counted from its last
     * message, and not on the removed list (it may come back and join). */
    core_peer_listed(a->core, "c", false);
    size_t m = mark(a);
    run(w, 6000, 6100);
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b");
    struct rec *ev = find_event(a, m, "removed");
    assert_non_null(ev);
    assert_string_equal(ev->subject, "c");
    /* It comes back: a learner again, then a voter. */
    w->cut[2] = false;
    peer_up(a, 6200, "c");
    run(w, 6200, 7000);
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b,v c");
}

static void test_force_config_after_losing_majority(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    request(a, 1001, 1, "k1", "kept");
    run(w, 1001, 1050);
    uint64_t commit = core_commit_index(a->core);
    w->cut[1] = w->cut[2] = true;
    peer_down(a, 1050, "b");
    peer_down(a, 1050, "c");
    run(w, 1050, 3000);
    assert_int_not_equal(core_role(a->core), CORE_PRIMARY); /* check-quorum */
    size_t m = mark(a);
    const char *keep[] = {"b"};
    core_force_config(a->core, 3000, 2, keep, 1);
    drain(a, 3000);
    struct rec *r = find_reply(a, m, 2);
    assert_int_equal(r->reply.status, CORE_REPLY_OK);
    assert_non_null(find_event(a, m, "forced_config"));
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    char text[256];
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,l b");
    /* Alone, it commits, keeping what was committed before. */
    request(a, 3001, 3, "k2", "after");
    run(w, 3001, 3100);
    assert_int_equal(find_reply(a, m, 3)->reply.status, CORE_REPLY_OK);
    assert_true(core_commit_index(a->core) > commit);
    /* b returns, follows the new epoch and is promoted. */
    w->cut[1] = false;
    peer_up(a, 3100, "b");
    run(w, 3100, 4000);
    last_config(a, text, sizeof(text));
    assert_string_equal(text, "v a,v b");
    assert_int_equal(core_commit_index(w->h[1].core), core_commit_index(a->core));
}

/* ========================================================================
 * 10c. Linearizable reads (ReadIndex)
 * ====================================================================== */

static void read_index(struct harness *h, int64_t now, uint64_t token)
{
    core_read_index(h->core, now, token);
    drain(h, now);
}

static void test_read_index_waits_for_a_majority_round(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    request(a, 1001, 1, "k1", "v1");
    run(w, 1001, 1010);
    uint64_t commit = core_commit_index(a->core);
    size_t m = mark(a);
    /* Cut off from both backups: the round is never answered. */
    w->cut[1] = w->cut[2] = true;
    read_index(a, 1010, 2);
    run(w, 1010, 1010 + EMIN / 2);
    assert_null(find_reply(a, m, 2));
    /* Back in touch: the next round (or this one's heartbeats) confirm it,
     * at the commit index it had when the round began. */
    w->cut[1] = w->cut[2] = false;
    run(w, 1010 + EMIN / 2, 1010 + EMIN / 2 + 2 * HB);
    assert_reply(find_reply(a, m, 2), CORE_REPLY_OK, commit, 1, "a");

    /* Reads that arrive together share one round: one heartbeat each. */
    m = mark(a);
    read_index(a, 2000, 3);
    read_index(a, 2000, 4);
    flush(a, 2000);
    assert_int_equal(count_sends(a, m, CORE_MSG_APPEND), 2);
    assert_null(find_reply(a, m, 3));
    route(w, 2000);
    assert_int_equal(find_reply(a, m, 3)->reply.status, CORE_REPLY_OK);
    assert_int_equal(find_reply(a, m, 4)->reply.status, CORE_REPLY_OK);
}

static void test_read_index_refused_off_the_primary(void **state)
{
    struct world *w = *state;
    cluster_abc(w, 0);
    struct harness *b = &w->h[1];
    size_t m = mark(b);
    read_index(b, 1001, 1);
    assert_reply(find_reply(b, m, 1), CORE_REPLY_NOT_PRIMARY, 0, 1, "a");
}

/* A primary deposed before its round is answered never confirms it. */
static void test_read_index_fails_when_primary_changes(void **state)
{
    struct world *w = *state;
    struct harness *a = cluster_abc(w, 0);
    size_t m = mark(a);
    w->cut[0] = true;
    read_index(a, 1001, 1);
    run(w, 1001, 1001 + 3 * EMAX);
    struct rec *r = find_reply(a, m, 1);
    assert_non_null(r);
    assert_int_equal(r->reply.status, CORE_REPLY_UNKNOWN);
    assert_int_not_equal(core_role(a->core), CORE_PRIMARY);
}

/* A new primary's commit index may lag what its predecessor acknowledged:
 * reads wait until it has committed an entry of its own epoch. */
static void test_read_index_waits_for_own_epoch_commit(void **state)
{
    struct world *w = *state;
    struct core_entry log[3];
    uint64_t epochs[] = {1, 1, 1};
    abc_log(log, epochs, 3);
    struct core_options o = opts("a");
    struct core_hard_state hs = hstate(1, "");
    struct harness *a = elect(w, 0, &o, &hs, log, 3, "b", "c", "b", 1000);
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_true(core_commit_index(a->core) < 4); /* its no-op is not committed */
    size_t m = mark(a);
    read_index(a, 1000, 1);
    flush(a, 1000);
    /* b answers the heartbeat round but not yet the no-op at 4: no answer. */
    deliver(a, 1001, msg_append_resp("b", 2, true, 3, 0));
    assert_null(find_reply(a, m, 1));
    deliver(a, 1002, msg_append_resp("b", 2, true, 4, 0));
    assert_int_equal(core_commit_index(a->core), 4);
    flush(a, 1002);
    struct rec *hb = last_sent(a, m, CORE_MSG_APPEND, "b");
    assert_non_null(hb);
    struct core_msg resp = msg_append_resp("b", 2, true, 4, 0);
    resp.append_response.round = hb->msg.append.round;
    deliver(a, 1003, resp);
    assert_reply(find_reply(a, m, 1), CORE_REPLY_OK, 4, 2, "a");
}

/* ========================================================================
 * 11. Configuration encoding
 * ====================================================================== */

static void test_config_round_trip(void **state)
{
    (void)state;
    struct core_config in = {.cluster_id = "c0ffee", .n = 3, .n_removed = 1};
    in.members[0] = (struct core_member){"a", true};
    in.members[1] = (struct core_member){"replica-2.local", true};
    in.members[2] = (struct core_member){"d", false};
    strcpy(in.removed[0], "gone");
    const char *text = "c c0ffee\nv a\nv replica-2.local\nl d\nr gone\n";
    char buf[CORE_CONFIG_TEXT_MAX];
    size_t n = core_config_encode(&in, buf, sizeof(buf));
    assert_int_equal(n, strlen(text));
    assert_memory_equal(buf, text, n);

    struct core_config out;
    assert_int_equal(core_config_decode((const uint8_t *)buf, n, &out), 0);
    assert_int_equal(out.n, 3);
    assert_string_equal(out.cluster_id, "c0ffee");
    for (unsigned i = 0; i < 3; i++) {
        assert_string_equal(out.members[i].id, in.members[i].id);
        assert_int_equal(out.members[i].voter, in.members[i].voter);
    }
    assert_int_equal(out.n_removed, 1);
    assert_string_equal(out.removed[0], "gone");
    assert_true(core_config_removed(&out, "gone"));
    assert_null(core_config_member(&out, "gone"));
    /* A log written before cluster ids: members only. A final line without
     * its newline is still one member. */
    assert_int_equal(core_config_decode((const uint8_t *)"v a\nl b", 7, &out), 0);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.cluster_id, "");
    assert_string_equal(out.members[1].id, "b");
    assert_false(out.members[1].voter);
    /* The longest id that fits. */
    struct core_config big = {.n = 1};
    big.members[0].voter = true;
    memset(big.members[0].id, 'x', CORE_ID_MAX - 1);
    n = core_config_encode(&big, buf, sizeof(buf));
    assert_int_equal(core_config_decode((const uint8_t *)buf, n, &out), 0);
    assert_string_equal(out.members[0].id, big.members[0].id);
    /* A buffer too small is reported, not overrun. */
    assert_int_equal(core_config_encode(&in, buf, 10), 0);
}

static void test_config_decode_rejects_garbage(void **state)
{
    (void)state;
    struct core_config out;
    char longid[CORE_ID_MAX + 8];
    snprintf(longid, sizeof(longid), "v ");
    memset(longid + 2, 'x', CORE_ID_MAX);
    longid[2 + CORE_ID_MAX] = '\n';
    longid[3 + CORE_ID_MAX] = '\0';
    const char *bad[] = {
        "va\n",            /* no space */
        "x a\n",           /* unknown letter */
        "v \n",            /* empty id */
        "v a\n\nv b\n",    /* empty line */
        "v",               /* truncated */
        longid,            /* CORE_ID_MAX characters: no room for the NUL */
        "v a\nl a\n",      /* a member twice */
        "v a\nr a\n",      /* a member and removed */
        "c x\nc y\nv a\n", /* two cluster ids */
        "r b\nr b\nv a\n", /* removed twice */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(core_config_decode((const uint8_t *)bad[i], strlen(bad[i]), &out), -1);
    }
    /* More members than a configuration holds. */
    char many[(CORE_MAX_MEMBERS + 1) * 8];
    size_t used = 0;
    for (int i = 0; i <= CORE_MAX_MEMBERS; i++) {
        used += (size_t)snprintf(many + used, sizeof(many) - used, "v r%d\n", i);
    }
    assert_int_equal(core_config_decode((const uint8_t *)many, used, &out), -1);
}

/* ========================================================================
 * Single-replica clusters
 * ====================================================================== */

/* --initial-size 1 with no other replica: nothing will ever call
 * core_peer_up, so the election deadline itself must settle the bootstrap
 * list [self] (persisted with the first vote) and elect it, writing
 * CONFIG "v a". */
static void test_single_replica_bootstraps_alone(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    o.initial_size = 1;
    struct harness *a = start(w, 0, &o, NULL, NULL, 0, 0);
    tick(a, EMIN);
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_int_equal(core_epoch(a->core), 1);
    assert_int_equal(core_last_index(a->core), 1);
    struct rec *st = nth(a, 0, REC_STATE, 0);
    assert_non_null(st);
    assert_int_equal(st->hs.n_bootstrap, 1);
    assert_string_equal(st->hs.bootstrap[0], "a");
    assert_int_equal(st->hs.epoch, 1);
    assert_string_equal(st->hs.voted_for, "a");
    char text[64];
    config_text(core_entry_at(a->core, 1), text, sizeof(text));
    assert_string_equal(text, "v a");
    assert_int_equal(count(a, 0, REC_SEND), 0);
    assert_disk_matches(a);
}

/* A primary that is the only voter commits its first entry at once (not
 * only when a client request happens along), so a replica that connects
 * next is added as a learner at the next tick. */
static void test_single_voter_commits_first_entry(void **state)
{
    struct world *w = *state;
    struct core_options o = opts("a");
    o.initial_size = 1;
    struct harness *a = start(w, 0, &o, NULL, NULL, 0, 0);
    tick(a, EMIN);
    assert_int_equal(core_role(a->core), CORE_PRIMARY);
    assert_int_equal(core_last_index(a->core), 1);
    assert_int_equal(core_commit_index(a->core), 1);
    peer_up(a, EMIN + 1, "b");
    tick(a, EMIN + HB);
    assert_non_null(find_event(a, 0, "joined"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_bootstrap_list_fixed_with_first_vote),
        T(test_bootstrap_picks_lowest_ids),
        T(test_no_bootstrap_without_enough_peers),
        T(test_election_timeout_prevote_then_vote),
        T(test_failed_prevote_keeps_epoch),
        T(test_vote_denied_to_stale_log),
        T(test_one_vote_per_epoch),
        T(test_higher_epoch_request_clears_vote),
        T(test_lease_refuses_votes_until_primary_down),
        T(test_lease_expires_after_election_min),
        T(test_primary_refuses_votes),
        T(test_bootstrap_vote_requires_same_list),
        T(test_first_primary_writes_config),
        T(test_first_config_commits_on_majority),
        T(test_append_gap_hints_last_plus_one),
        T(test_append_conflict_hints_epoch_start),
        T(test_append_truncates_conflict),
        T(test_append_duplicate_does_not_truncate),
        T(test_append_commit_is_min_leader_commit_last_new),
        T(test_append_stale_epoch_refused),
        T(test_commit_needs_current_epoch),
        T(test_step_down_on_higher_epoch_response),
        T(test_step_down_on_newer_append),
        T(test_check_quorum_steps_down),
        T(test_check_quorum_counts_from_last_ack),
        T(test_check_quorum_on_request_between_ticks),
        T(test_set_timing_primary),
        T(test_set_timing_backup),
        T(test_request_on_backup_names_primary),
        T(test_request_rejected),
        T(test_retry_while_pending_appends_once),
        T(test_retry_with_other_data_conflicts),
        T(test_slow_primary_disk_never_acks_early),
        T(test_client_id_alphabet),
        T(test_retry_after_failover_applies_once),
        T(test_requests_batched_per_flush),
        T(test_reconnected_peer_gets_resend),
        T(test_truncated_config_reverts_membership),
        T(test_stale_votes_not_counted),
        T(test_peer_down_primary_elects_soon),
        T(test_peer_down_other_peer_changes_nothing),
        T(test_learner_added_then_promoted),
        T(test_learner_never_campaigns),
        T(test_learner_joins_live_cluster),
        T(test_read_index_waits_for_a_majority_round),
        T(test_read_index_refused_off_the_primary),
        T(test_read_index_fails_when_primary_changes),
        T(test_read_index_waits_for_own_epoch_commit),
        T(test_remove_backup_on_request),
        T(test_remove_refusals),
        T(test_remove_refused_without_majority),
        T(test_primary_removes_itself_and_hands_over),
        T(test_gone_member_removed_only_when_unlisted),
        T(test_force_config_after_losing_majority),
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_decode_rejects_garbage),
        T(test_single_replica_bootstraps_alone),
        T(test_single_voter_commits_first_entry),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
