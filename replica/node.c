/*
 * replica/node.c — the libuv adapter around the core (see node.h).
 *
 * Sections: instrumentation (fsync durations, Append round trips), the
 * core's io (send, persist, reply, event), the flush that keeps the
 * durability contract, client calls (request, membership, status, read,
 * subscribe, fail, the fault lab's faults and timing), transport
 * callbacks, life cycle.
 *
 * One loop iteration = one batch: every frame read in it is fed to the
 * core, then the prepare handle (which runs right before the loop blocks)
 * fsyncs the log once and only then writes what the core sent or replied.
 */
#include "node.h"
#include "validate.h"
#include "clock.h"
#include "logging.h"
#include "net/codec.h"
#include "net/traffic.h"
#include "discovery.h"
#include "faults.h"
#include "transport.h"
#include "storage/wal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* A client request waiting for the core's reply. The core holds a pointer
 * to it as its token; the connection may close first, then conn is NULL. */
struct read_params {
    uint64_t call_id;
    uint64_t after;
    uint32_t limit;
    int filter;
    int consistency;
};

struct call {
    struct conn *conn;
    uint64_t call_id;
    bool is_read;    /* a linearizable read: answered with a ReadReply */
    bool is_request; /* a client request: counted in requests_waiting */
    struct read_params read;
    struct call *next;
    struct call *prev;
};

/* Bucket upper bounds of the Status histograms: 100 us doubling up to
 * 3.3 s (etcd's peer round-trip layout), for the disk and the network. */
#define HIST_BUCKETS 16

struct histogram {
    uint64_t counts[HIST_BUCKETS]; /* per bucket, not cumulative; above the last: count only */
    uint64_t count;
    uint64_t sum_us;
};

/* Append round trips to one peer. A probe times one Append at a time, and
 * only one whose answer cannot be mistaken for another's: it carries a
 * heartbeat round that no earlier Append to this peer carried (answers echo
 * the round), or entries reaching past every earlier one (a success answer
 * says how far the peer's log matches, never past the Append it answers).
 * Rounds only advance for linearizable reads, hence the second kind. */
struct peer_rtt {
    char id[CORE_ID_MAX]; /* "" = free slot */
    uint64_t round_sent;  /* highest round sent to it */
    uint64_t end_sent;    /* highest prev_index + entries sent to it */
    bool probing;
    uint64_t epoch;    /* ours when the probe began: a new term drops it */
    bool by_round;     /* the probe waits for an answer of its round, else for match >= key */
    uint64_t key;      /* that round or end */
    uint64_t since_ns; /* when its Append was queued */
    uint64_t used_ns;  /* for reusing the least recently used slot */
    struct histogram h;
};

/* What the node keeps per connection. */
struct conn_state {
    bool subscribed;
    bool traffic; /* ... to the protocol messages too */
    struct call *calls;
};

struct node {
    struct node_options o;
    uv_loop_t loop;
    struct core *core;
    struct core_sink sink;
    struct wal *wal;
    struct transport *t;
    struct discovery *disc;
    uv_timer_t tick_timer;
    uv_timer_t disk_timer; /* retries the log's sync while the disk is full */
    /* "ok", or why the log cannot be written (a full disk); a sync that
     * failed sets disk_failed_now, which flush_cb hands to the core once
     * the update is carried out. */
    char disk[128];
    bool disk_failed;
    bool disk_failed_now;
    uv_prepare_t flush_prep;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    int64_t started_ms;
    uint64_t rng;
    bool stopping;
    int exit_code;
    bool early_queued;            /* early Appends wait in connection buffers */
    char cluster_id[CORE_ID_MAX]; /* what the transport's Hellos say */
    /* Instrumentation, reported in Status. */
    struct histogram fsync;
    struct peer_rtt rtt[CORE_MAX_MEMBERS];
    uint64_t requests_waiting; /* client requests the core has not answered */
    /* Protocol messages sent, for subscribers that asked (traffic.h). */
    struct traffic traffic;
    unsigned traffic_subs;
    uv_timer_t traffic_timer;
    Replicacao__TrafficItem traffic_pb[LIMIT_TRAFFIC_ITEMS];
    Replicacao__TrafficItem *traffic_ptrs[LIMIT_TRAFFIC_ITEMS];
    struct traffic_item traffic_keep[LIMIT_TRAFFIC_ITEMS];
};

static int64_t now_ms(void)
{
    return clock_mono_ms();
}

static void fatal(const char *what, int rc)
{
    log_error("%s: %s; exiting so a restart recovers from the durable log", what, uv_strerror(rc));
    _exit(1);
}

/* ========================================================================
 * Instrumentation: fsync durations and Append round trips
 * ====================================================================== */

static uint64_t bucket_bound_us(unsigned i)
{
    return 100u << i;
}

static void hist_observe(struct histogram *h, uint64_t us)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        if (us <= bucket_bound_us(i)) {
            h->counts[i]++;
            break;
        }
    }
    h->count++;
    h->sum_us += us;
}

/* The wire form (cumulative), in `pb` with arrays the caller provides. */
static void hist_to_pb(const struct histogram *h, Replicacao__Histogram *pb,
                       uint64_t bounds[HIST_BUCKETS], uint64_t counts[HIST_BUCKETS])
{
    replicacao__histogram__init(pb);
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        cum += h->counts[i];
        bounds[i] = bucket_bound_us(i);
        counts[i] = cum;
    }
    pb->n_bounds_us = pb->n_counts = HIST_BUCKETS;
    pb->bounds_us = bounds;
    pb->counts = counts;
    pb->count = h->count;
    pb->sum_us = h->sum_us;
}

/* The peer's slot; with `make`, taking a free or the least recently used
 * one (ids come and go over a long life). */
static struct peer_rtt *rtt_slot(struct node *n, const char *id, bool make)
{
    struct peer_rtt *oldest = &n->rtt[0];
    for (unsigned i = 0; i < CORE_MAX_MEMBERS; i++) {
        struct peer_rtt *p = &n->rtt[i];
        if (strcmp(p->id, id) == 0) {
            return p;
        }
        if (p->id[0] == '\0' || (oldest->id[0] != '\0' && p->used_ns < oldest->used_ns)) {
            oldest = p;
        }
    }
    if (!make) {
        return NULL;
    }
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->id, sizeof(oldest->id), "%s", id);
    return oldest;
}

/* An Append queued for `to`: it starts a probe if none runs and it is one
 * whose answer is recognisable. */
static void rtt_sent(struct node *n, const char *to, const struct core_msg *m)
{
    uint64_t now = uv_hrtime();
    struct peer_rtt *p = rtt_slot(n, to, true);
    uint64_t end = m->append.prev_index + m->append.n_entries;
    bool new_round = m->append.round > p->round_sent;
    bool new_end = end > p->end_sent;
    p->used_ns = now;
    if (p->probing && p->epoch != m->epoch) {
        p->probing = false; /* from an earlier term of ours as primary */
    }
    if (!p->probing && (new_round || new_end)) {
        p->probing = true;
        p->epoch = m->epoch;
        p->by_round = new_round;
        p->key = new_round ? m->append.round : end;
        p->since_ns = now;
    }
    if (new_round) {
        p->round_sent = m->append.round;
    }
    if (new_end) {
        p->end_sent = end;
    }
}

/* An AppendResponse from `from`: does it answer the probe's Append (or a
 * later one, when that answer was lost: at most a heartbeat more)? */
static void rtt_answered(struct node *n, const char *from, const Replicacao__AppendResponse *r)
{
    struct peer_rtt *p = rtt_slot(n, from, false);
    if (p == NULL || !p->probing) {
        return;
    }
    if (p->by_round ? r->round >= p->key : r->success && r->match_index >= p->key) {
        uint64_t now = uv_hrtime();
        hist_observe(&p->h, (now - p->since_ns + 500) / 1000);
        p->probing = false;
        p->used_ns = now;
    } else if (!p->by_round && !r->success) {
        p->probing = false; /* refused: the entries go again after a hint */
    }
}

/* A connection to or from the peer closed: what was in flight may never
 * be answered, and a late answer would time the outage. */
static void rtt_cancel(struct node *n, const char *id)
{
    struct peer_rtt *p = rtt_slot(n, id, false);
    if (p != NULL) {
        p->probing = false;
    }
}

/* ========================================================================
 * Carrying out the core's updates
 * ====================================================================== */

static struct node *node_of(struct core_sink *s)
{
    return s->data;
}

static void sink_send(struct core_sink *s, const char *to, const struct core_msg *m, bool early)
{
    struct node *n = node_of(s);
    struct conn *c = transport_peer(n->t, to);
    if (c == NULL) {
        return; /* not connected: the core retries on its own schedule */
    }
    struct codec_out out;
    if (codec_from_core(&out, n->o.id, m) == 0) {
        conn_queue(c, &out.env);
        if (n->traffic_subs > 0) {
            traffic_note(&n->traffic, &out.env, to, clock_wall_ms());
        }
        codec_out_release(&out);
        if (m->type == CORE_MSG_APPEND) {
            rtt_sent(n, to, m);
        }
    }
    n->early_queued |= early;
}

static void sink_persist_state(struct core_sink *s, const struct core_hard_state *hs)
{
    int rc = wal_append_state(node_of(s)->wal, hs);
    if (rc < 0) {
        fatal("buffering hard state", rc);
    }
}

static void sink_persist_entries(struct core_sink *s, uint64_t truncate_from,
                                 const struct core_entry *e, size_t count)
{
    int rc = wal_append_entries(node_of(s)->wal, truncate_from, e, count);
    if (rc < 0) {
        fatal("buffering log entries", rc);
    }
}

static void sink_persist_checkpoint(struct core_sink *s, const struct core_checkpoint *cp)
{
    int rc = wal_append_checkpoint(node_of(s)->wal, cp);
    if (rc < 0) {
        fatal("buffering a checkpoint", rc);
    }
}

static bool disk_full_error(int rc)
{
    return rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG;
}

/* Retention: keep the snapshot, then let the log go (entries before
 * drop_before), or, installed from the primary, start the log anew after
 * it. A full disk stops writes as a failed sync does. */
static void sink_persist_snapshot(struct core_sink *s, const struct core_update *u)
{
    struct node *n = node_of(s);
    int rc = wal_save_snapshot(n->wal, u->snapshot_index, u->snapshot_epoch, u->snapshot_data,
                               u->snapshot_len);
    if (rc == 0) {
        rc = u->snapshot_reset ? wal_reset(n->wal, u->snapshot_index + 1)
                               : wal_drop_before(n->wal, u->drop_before);
    }
    if (disk_full_error(rc)) {
        snprintf(n->disk, sizeof(n->disk), "full: %s; writes stopped until space returns",
                 uv_strerror(rc));
        n->disk_failed = n->disk_failed_now = true;
    } else if (rc < 0) {
        log_error("keeping a snapshot at %llu: %s", (unsigned long long)u->snapshot_index,
                  wal_last_error(n->wal));
        fatal("keeping a snapshot", rc);
    } else {
        log_info("snapshot at %llu kept; the log now starts at %llu (%llu segment(s))",
                 (unsigned long long)u->snapshot_index, (unsigned long long)wal_first_index(n->wal),
                 (unsigned long long)wal_segment_count(n->wal));
    }
}

/* Retention: once a quarter more than what is to be kept is committed,
 * the core takes a snapshot and storage drops whole old segments. */
static void maybe_compact(struct node *n, int64_t now)
{
    uint64_t first = core_first_index(n->core), commit = core_commit_index(n->core);
    uint64_t held = commit >= first ? commit - first + 1 : 0, keep = n->o.retain_entries;
    if (n->o.retain_bytes > 0) {
        uint64_t size = wal_size(n->wal);
        if (size <= n->o.retain_bytes + n->o.retain_bytes / 4 || held == 0) {
            return;
        }
        keep = (uint64_t)((double)held * n->o.retain_bytes / size);
    } else if (keep == 0 || held <= keep + keep / 4 + 64) {
        return;
    }
    if (keep == 0) {
        keep = 1;
    }
    if (!n->disk_failed && core_compact(n->core, now, keep)) {
        core_run_updates(n->core, now, &n->sink);
    }
}

/* Early Appends go on the wire now, so the backups write while we fsync.
 * A full disk (the write or a new segment failed; nothing of it is
 * durable) stops writes here until space returns (disk_retry_cb). Any
 * other failure, of fdatasync above all, leaves the page cache in an
 * unknown state: exit, and a restart recovers from what is on disk. */
static bool sink_sync(struct core_sink *s)
{
    struct node *n = node_of(s);
    if (n->early_queued) {
        transport_flush_peers(n->t);
        n->early_queued = false;
    }
    if (n->disk_failed) {
        return false; /* the retry timer owns the buffered records */
    }
    int rc = wal_sync(n->wal);
    if (disk_full_error(rc)) {
        snprintf(n->disk, sizeof(n->disk), "full: %s; writes stopped until space returns",
                 uv_strerror(rc));
        n->disk_failed = n->disk_failed_now = true;
        return false;
    }
    if (rc < 0) {
        fatal("fsync of the log", rc);
    }
    uint64_t ns = wal_last_fsync_ns(n->wal);
    if (ns > 0) {
        hist_observe(&n->fsync, (ns + 500) / 1000);
    }
    return true;
}

static const char *address_of(struct node *n, const char *id)
{
    const char *addr = "", *name = "";
    if (id == NULL || id[0] == '\0') {
        return "";
    }
    if (strcmp(id, n->o.id) == 0) {
        return n->o.advertise;
    }
    transport_peer_info(n->t, id, &addr, &name);
    return addr;
}

static void call_unlink(struct call *call)
{
    if (call->conn == NULL) {
        return;
    }
    struct conn_state *cs = conn_get_data(call->conn);
    if (call->prev) {
        call->prev->next = call->next;
    } else {
        cs->calls = call->next;
    }
    if (call->next) {
        call->next->prev = call->prev;
    }
    call->conn = NULL;
}

static void send_read_reply(struct node *n, struct conn *c, const struct read_params *rp,
                            const struct core_reply *refused);

static void sink_reply(struct core_sink *s, uint64_t token, const struct core_reply *r)
{
    struct node *n = node_of(s);
    struct call *call = (struct call *)(uintptr_t)token;
    if (call->is_request) {
        n->requests_waiting--;
    }
    if (call->conn != NULL && call->is_read) {
        send_read_reply(n, call->conn, &call->read, r->status == CORE_REPLY_OK ? NULL : r);
        call_unlink(call);
    } else if (call->conn != NULL) {
        Envelope env;
        Replicacao__ClientReply rep = REPLICACAO__CLIENT_REPLY__INIT;
        wire_init(&env, n->o.id, core_epoch(n->core));
        rep.call_id = call->call_id;
        rep.status = (Replicacao__ClientReply__Status)r->status;
        rep.index = r->index;
        rep.epoch = r->epoch;
        rep.primary = (char *)(r->primary ? r->primary : "");
        rep.primary_address = (char *)address_of(n, r->primary);
        rep.message = (char *)(r->message ? r->message : "");
        env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY;
        env.client_reply = &rep;
        conn_queue(call->conn, &env);
        call_unlink(call);
    }
    free(call);
}

static void queue_if_subscribed(struct conn *c, void *env)
{
    struct conn_state *cs = conn_get_data(c);
    if (cs != NULL && cs->subscribed) {
        conn_queue(c, env);
    }
}

static void queue_if_traffic(struct conn *c, void *env)
{
    struct conn_state *cs = conn_get_data(c);
    if (cs != NULL && cs->traffic) {
        conn_queue(c, env);
    }
}

/* The messages noted since the last batch, to those who asked for them. */
static void traffic_flush(struct node *n)
{
    Replicacao__Traffic t;
    if (n->traffic_subs == 0 ||
        !traffic_take(&n->traffic, &t, n->traffic_pb, n->traffic_ptrs, n->traffic_keep)) {
        return;
    }
    Envelope env;
    wire_init(&env, n->o.id, core_epoch(n->core));
    env.body_case = REPLICACAO__ENVELOPE__BODY_TRAFFIC;
    env.traffic = &t;
    transport_each_conn(n->t, queue_if_traffic, &env);
}

static void traffic_timer_cb(uv_timer_t *timer)
{
    struct node *n = timer->data;
    traffic_flush(n);
    transport_flush(n->t);
}

static void sink_event(struct core_sink *s, const struct core_event *ev)
{
    struct node *n = node_of(s);
    const char *type = event_name(ev->type);
    if (ev->type != EVENT_COMMITTED) {
        log_info("%s subject=%s epoch=%llu index=%llu %s", type, ev->subject,
                 (unsigned long long)ev->epoch, (unsigned long long)ev->index, ev->detail);
    }
    Envelope env;
    Replicacao__Event e = REPLICACAO__EVENT__INIT;
    wire_init(&env, n->o.id, ev->epoch);
    e.type = (char *)type;
    e.replica = n->o.id;
    e.subject = (char *)ev->subject;
    e.epoch = ev->epoch;
    e.index = ev->index;
    e.time_ms = clock_wall_ms();
    e.detail = (char *)ev->detail;
    env.body_case = REPLICACAO__ENVELOPE__BODY_EVENT;
    env.event = &e;
    transport_each_conn(n->t, queue_if_subscribed, &env);
    if (ev->type == EVENT_REMOVED) {
        transport_forget_peer(n->t, ev->subject);
    }
}

static uint64_t random_cb(void *arg)
{
    /* xorshift64*: the core only needs spread, not secrecy. */
    struct node *n = arg;
    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    return n->rng * 2685821657736338717ULL;
}

static int64_t wall_clock_cb(void *arg)
{
    return clock_wall_ms();
}

/* ========================================================================
 * The flush: one update per loop iteration
 * ====================================================================== */

/* The primary finds gone members only among those discovery dropped. */
static void update_listed(struct node *n)
{
    if (n->o.dead_member_timeout_ms == 0 || core_role(n->core) != CORE_PRIMARY) {
        return;
    }
    struct core_status st;
    core_get_status(n->core, now_ms(), &st);
    for (unsigned i = 0; i < st.config.n; i++) {
        const char *id = st.config.members[i].id;
        if (strcmp(id, n->o.id) != 0) {
            core_peer_listed(n->core, id, transport_peer_listed(n->t, id));
        }
    }
}

static void node_event(struct node *n, enum event_type type, const char *detail)
{
    struct core_event ev = {
        .type = type, .epoch = core_epoch(n->core), .index = core_last_index(n->core)};
    snprintf(ev.subject, sizeof(ev.subject), "%s", n->o.id);
    /* Cut to fit, between characters (a peer's Hello may name it in any
     * script): the detail is for people, the disk state is in Status. */
    size_t len = utf8_cut(detail, strlen(detail), sizeof(ev.detail) - 1);
    memcpy(ev.detail, detail, len);
    ev.detail[len] = '\0';
    sink_event(&n->sink, &ev);
}

/* While the disk is full: try the buffered records again, once a second. */
static void disk_retry_cb(uv_timer_t *timer)
{
    struct node *n = timer->data;
    int rc = wal_sync(n->wal);
    if (disk_full_error(rc)) {
        return;
    }
    if (rc < 0) {
        fatal("fsync of the log", rc);
    }
    uv_timer_stop(&n->disk_timer);
    n->disk_failed = false;
    snprintf(n->disk, sizeof(n->disk), "ok");
    log_info("the log can be written again: resuming");
    core_storage_resumed(n->core, now_ms());
    node_event(n, EVENT_DISK_OK, "the log can be written again");
}

/* After an update whose sync failed: the core stops acting as if it held
 * what it could not write. */
static void disk_failed(struct node *n)
{
    n->disk_failed_now = false;
    log_error("%s (%s)", n->disk, wal_last_error(n->wal));
    core_storage_failed(n->core, now_ms(), "its disk is full");
    node_event(n, EVENT_DISK_FULL, n->disk);
    uv_timer_start(&n->disk_timer, disk_retry_cb, 1000, 1000);
}

static void tick_cb(uv_timer_t *timer)
{
    struct node *n = timer->data;
    if (transport_paused(n->t)) {
        return; /* a paused replica's timers fire nothing */
    }
    update_listed(n);
    core_tick(n->core, now_ms());
}

/* Once the log names our cluster, every Hello carries it. */
static void update_cluster_id(struct node *n)
{
    const char *id = core_cluster_id(n->core);
    if (strcmp(id, n->cluster_id) != 0) {
        snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", id);
        transport_set_cluster_id(n->t, id);
        log_info("member of cluster %s", id);
    }
}

/* Runs right before the loop blocks, once every input of this iteration has
 * been fed to the core. Its update is carried out (core_update_apply keeps
 * the durability rule; the sync is one fdatasync, so an iteration is one
 * group commit) and confirmed; what the confirmation makes necessary
 * (commits, replies) goes out in the same iteration. */
static void flush_cb(uv_prepare_t *prep)
{
    struct node *n = prep->data;
    int64_t now = now_ms();
    if (transport_paused(n->t) && !n->stopping) {
        /* Frozen: only what passes a pause (status answers) leaves. The
         * core sees the time jump when the pause ends, as after SIGCONT. */
        uv_timer_stop(&n->tick_timer);
        transport_flush(n->t);
        return;
    }
    core_flush(n->core, now);
    core_run_updates(n->core, now, &n->sink);
    if (n->disk_failed_now) {
        disk_failed(n);
        core_run_updates(n->core, now, &n->sink);
    }
    maybe_compact(n, now);
    update_cluster_id(n);
    if (n->traffic.every) {
        traffic_flush(n); /* slow motion: every message as it goes */
    }
    transport_flush(n->t);
    if (!n->stopping) {
        int64_t delay = core_next_deadline(n->core) - now;
        uv_timer_start(&n->tick_timer, tick_cb, delay > 0 ? (uint64_t)delay : 0, 0);
    }
}

/* ========================================================================
 * Client calls
 * ====================================================================== */

static void reply_error(struct node *n, struct conn *c, const char *msg)
{
    Envelope env;
    Replicacao__Error e = REPLICACAO__ERROR__INIT;
    wire_init(&env, n->o.id, core_epoch(n->core));
    e.message = (char *)msg;
    env.body_case = REPLICACAO__ENVELOPE__BODY_ERROR;
    env.error = &e;
    conn_queue(c, &env);
}

/* A call the core answers later: its token. 0 when out of memory (the
 * client got an Error). */
static uint64_t call_new(struct node *n, struct conn *c, uint64_t call_id)
{
    struct call *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        reply_error(n, c, "out of memory");
        return 0;
    }
    struct conn_state *cs = conn_get_data(c);
    call->conn = c;
    call->call_id = call_id;
    call->next = cs->calls;
    if (cs->calls) {
        cs->calls->prev = call;
    }
    cs->calls = call;
    return (uint64_t)(uintptr_t)call;
}

static void handle_client_request(struct node *n, struct conn *c,
                                  const Replicacao__ClientRequest *req)
{
    uint64_t token = call_new(n, c, req->call_id);
    if (token != 0) {
        ((struct call *)(uintptr_t)token)->is_request = true;
        n->requests_waiting++;
        core_client_request(n->core, now_ms(), token, req->client_id, req->data.data, req->data.len,
                            req->seen_index_set ? req->seen_index : CORE_SEEN_UNKNOWN);
    }
}

static void handle_remove_member(struct node *n, struct conn *c,
                                 const Replicacao__RemoveMember *req)
{
    uint64_t token = call_new(n, c, req->call_id);
    if (token != 0) {
        log_info("%s asks to remove member %s", conn_describe(c), req->id);
        core_remove_member(n->core, now_ms(), token, req->id);
    }
}

static void handle_force_config(struct node *n, struct conn *c, const Replicacao__ForceConfig *req)
{
    uint64_t token = call_new(n, c, req->call_id);
    if (token != 0) {
        log_warn("UNSAFE: %s forces the configuration to this replica and %zu others; entries "
                 "only the lost majority held are gone",
                 conn_describe(c), req->n_keep);
        core_force_config(n->core, now_ms(), token, (const char *const *)req->keep,
                          (unsigned)req->n_keep);
    }
}

/* This process's resident memory, from /proc (0 where there is none). */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%llu %llu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void handle_status(struct node *n, struct conn *c, uint64_t call_id)
{
    int64_t now = now_ms();
    struct core_status st;
    core_get_status(n->core, now, &st);
    Replicacao__PeerStatus peers[CORE_MAX_MEMBERS], *peer_ptrs[CORE_MAX_MEMBERS];
    Replicacao__Histogram rtt[CORE_MAX_MEMBERS], fsync;
    uint64_t bounds[HIST_BUCKETS], rtt_counts[CORE_MAX_MEMBERS][HIST_BUCKETS],
        fsync_counts[HIST_BUCKETS];
    for (unsigned i = 0; i < st.n_peers; i++) {
        const struct core_peer_status *p = &st.peers[i];
        const char *addr = "", *name = "";
        bool connected = transport_peer_info(n->t, p->id, &addr, &name);
        replicacao__peer_status__init(&peers[i]);
        peers[i].id = (char *)p->id;
        peers[i].name = (char *)name;
        peers[i].address = (char *)addr;
        peers[i].voter = p->voter;
        peers[i].connected = connected && transport_peer(n->t, p->id) != NULL;
        peers[i].match_index = p->match_index;
        peers[i].last_seen_ms = p->last_seen_ms;
        peers[i].member = p->member;
        peers[i].listed = transport_peer_listed(n->t, p->id);
        const struct peer_rtt *pr = rtt_slot(n, p->id, false);
        if (pr != NULL && pr->h.count > 0) {
            hist_to_pb(&pr->h, &rtt[i], bounds, rtt_counts[i]);
            peers[i].round_trip = &rtt[i];
        }
        peer_ptrs[i] = &peers[i];
    }
    Replicacao__Member members[CORE_MAX_MEMBERS], *member_ptrs[CORE_MAX_MEMBERS];
    for (unsigned i = 0; i < st.config.n; i++) {
        replicacao__member__init(&members[i]);
        members[i].id = st.config.members[i].id;
        members[i].voter = st.config.members[i].voter;
        member_ptrs[i] = &members[i];
    }
    char *removed[CORE_MAX_REMOVED];
    for (unsigned i = 0; i < st.config.n_removed; i++) {
        removed[i] = st.config.removed[i];
    }
    Envelope env;
    Replicacao__Status s = REPLICACAO__STATUS__INIT;
    wire_init(&env, n->o.id, st.epoch);
    s.call_id = call_id;
    s.id = n->o.id;
    s.name = n->o.name;
    s.address = n->o.advertise;
    s.role = (char *)role_name((enum role)st.role);
    s.epoch = st.epoch;
    s.primary = st.primary;
    s.voted_for = st.voted_for;
    s.last_index = st.last_index;
    s.commit_index = st.commit_index;
    s.processed = st.processed;
    s.synced = st.synced;
    s.heartbeat_age_ms = st.heartbeat_age_ms;
    s.uptime_ms = now - n->started_ms;
    s.voter = st.voter;
    s.n_peers = st.n_peers;
    s.peers = peer_ptrs;
    s.cluster_id = st.config_index != 0 ? st.config.cluster_id : "";
    s.config_index = st.config_index;
    s.n_members = st.config.n;
    s.members = member_ptrs;
    s.n_removed = st.config.n_removed;
    s.removed = removed;
    hist_to_pb(&n->fsync, &fsync, bounds, fsync_counts);
    s.wal_fsync = &fsync;
    s.pending_requests = n->requests_waiting;
    s.handshakes_refused = transport_handshakes_refused(n->t);
    s.log_bytes = wal_size(n->wal);
    s.log_segments = wal_segment_count(n->wal);
    s.first_index = wal_first_index(n->wal);
    s.cache_bytes = st.cache_bytes;
    s.session_horizon = st.session_horizon;
    s.sessions = st.sessions;
    s.storage_errors = st.storage_errors;
    s.disk = n->disk;
    s.resident_bytes = resident_bytes();
    const struct faults *fs = transport_faults(n->t);
    Replicacao__FaultRule *rules = calloc(fs->n ? fs->n : 1, sizeof(*rules));
    Replicacao__FaultRule **rule_ptrs = calloc(fs->n ? fs->n : 1, sizeof(*rule_ptrs));
    for (unsigned i = 0; rules != NULL && rule_ptrs != NULL && i < fs->n; i++) {
        const struct fault_rule *fr = &fs->rules[i];
        replicacao__fault_rule__init(&rules[i]);
        rules[i].fault_id = fr->fault_id;
        rules[i].peer = (char *)fr->peer;
        rules[i].loss = fr->loss;
        rules[i].delay_ms = fr->delay_ms;
        rules[i].expires_in_ms = fr->expires_at == 0    ? 0
                                 : fr->expires_at > now ? (uint32_t)(fr->expires_at - now)
                                                        : 1;
        rule_ptrs[i] = &rules[i];
        s.n_faults = i + 1;
    }
    s.faults = rule_ptrs;
    s.paused_ms = faults_pause_left(fs, now);
    s.pause_fault_id = s.paused_ms ? fs->pause_fault_id : 0;
    s.heartbeat_ms = st.heartbeat_ms;
    s.election_min_ms = st.election_min_ms;
    s.election_max_ms = st.election_max_ms;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS;
    env.status = &s;
    conn_queue(c, &env);
    free(rules);
    free(rule_ptrs);
}

/* The fault lab: the coordinator's rules for this replica replace those it
 * held (wire_unpack checked their bounds), and a pause starts, goes on or
 * ends. The transport carries them out; the next Status shows them. */
static void handle_set_faults(struct node *n, struct conn *c, const Replicacao__SetFaults *sf)
{
    struct faults *fs = transport_faults(n->t);
    int64_t now = now_ms();
    faults_clear(fs);
    for (size_t i = 0; i < sf->n_rules; i++) {
        const Replicacao__FaultRule *r = sf->rules[i];
        faults_add(fs, now, r->fault_id, r->peer, r->loss, r->delay_ms, r->expires_in_ms);
    }
    faults_pause(fs, now, sf->pause_ms, sf->pause_fault_id);
    log_info("fault lab: %s sets %zu rule(s)%s", conn_describe(c), sf->n_rules,
             sf->pause_ms ? ", and a pause" : "");
    transport_faults_changed(n->t);
}

/* Slow motion: explicit timeouts, or this replica's own flags times a
 * factor (1 restores them), in force at once (core_set_timing). */
static void handle_set_timing(struct node *n, struct conn *c, const Replicacao__SetTiming *st)
{
    unsigned hb = st->heartbeat_ms, emin = st->election_min_ms, emax = st->election_max_ms;
    if (hb == 0) {
        uint64_t k = st->slow_motion;
        uint64_t base_hb = n->o.heartbeat_ms ? n->o.heartbeat_ms : 50;
        uint64_t base_min = n->o.election_min_ms ? n->o.election_min_ms : 300;
        uint64_t base_max = n->o.election_max_ms > base_min ? n->o.election_max_ms : 2 * base_min;
        uint64_t cap = LIMIT_RUNTIME_TIMING_MS;
        hb = (unsigned)(base_hb * k < cap ? base_hb * k : cap);
        emin = (unsigned)(base_min * k < cap ? base_min * k : cap);
        emax = (unsigned)(base_max * k < cap ? base_max * k : cap);
    }
    core_set_timing(n->core, now_ms(), hb, emin, emax);
    /* Slower than its own flags: subscribers see every message. What was
     * summed so far goes first, ahead of the answers to this change. */
    unsigned own = n->o.heartbeat_ms ? n->o.heartbeat_ms : 50;
    traffic_flush(n);
    n->traffic.every = hb > own;
    struct core_status s;
    core_get_status(n->core, now_ms(), &s);
    log_info("fault lab: %s sets the timing: heartbeat %u ms, election timeout [%u, %u) ms",
             conn_describe(c), s.heartbeat_ms, s.election_min_ms, s.election_max_ms);
}

static bool read_matches(struct node *n, const struct core_entry *e, int filter)
{
    if (e->type != CORE_ENTRY_DATA) {
        return false;
    }
    bool mine = strcmp(e->primary, n->o.id) == 0;
    switch (filter) {
    case REPLICACAO__READ_REQUEST__FILTER__PROCESSED:
        return mine;
    case REPLICACAO__READ_REQUEST__FILTER__SYNCED:
        return !mine;
    default:
        return true;
    }
}

/* Answer a read from this replica's committed log, or say why not
 * (`refused`: a linearizable read this replica cannot serve). */
static void send_read_reply(struct node *n, struct conn *c, const struct read_params *rp,
                            const struct core_reply *refused)
{
    uint32_t limit = rp->limit ? rp->limit : LIMIT_READ_DEFAULT;
    if (limit > LIMIT_READ_MAX) {
        limit = LIMIT_READ_MAX;
    }
    uint64_t commit = core_commit_index(n->core);
    /* Any `after` is a valid question: past the commit index (up to
     * UINT64_MAX, where after + 1 would wrap) the answer is no entries;
     * before what retention kept, none either, and it says so. */
    uint64_t first = rp->after < commit ? rp->after + 1 : commit + 1;
    uint64_t kept_from = core_first_index(n->core);
    bool compacted = refused == NULL && first < kept_from && first <= commit;
    if (compacted && rp->filter != REPLICACAO__READ_REQUEST__FILTER__ALL) {
        /* A replica's processed/synced view shows what it still keeps
         * (its total counts every one); only the log itself says 410. */
        first = kept_from;
        compacted = false;
    }
    if (refused != NULL || compacted) {
        limit = 0;
    }
    Replicacao__Entry *entries = calloc(limit + 1, sizeof(*entries));
    Replicacao__Entry **ptrs = calloc(limit + 1, sizeof(*ptrs));
    if (entries == NULL || ptrs == NULL) {
        free(entries);
        free(ptrs);
        reply_error(n, c, "out of memory");
        return;
    }
    /* Entries come in pages from the cache or the log files, lent until
     * the next page: the ones that match are copied. */
    size_t count = 0;
    struct core_entry **copies = calloc(limit + 1, sizeof(*copies));
    for (uint64_t i = first; copies != NULL && i <= commit && count < limit;) {
        const struct core_entry *es;
        size_t k;
        if (core_read_entries(n->core, i, commit, 1u << 20, &es, &k) != 0) {
            break; /* counted in storage_errors; the page ends here */
        }
        for (size_t j = 0; j < k && count < limit; j++) {
            if (read_matches(n, &es[j], rp->filter) &&
                (copies[count] = core_entries_copy(&es[j], 1)) != NULL) {
                codec_entry_to_pb(copies[count], &entries[count]);
                ptrs[count] = &entries[count];
                count++;
            }
        }
        i += k;
    }
    struct core_status st;
    core_get_status(n->core, now_ms(), &st);
    Envelope env;
    Replicacao__ReadReply r = REPLICACAO__READ_REPLY__INIT;
    wire_init(&env, n->o.id, core_epoch(n->core));
    r.call_id = rp->call_id;
    r.commit_index = commit;
    r.n_entries = count;
    r.entries = ptrs;
    r.total = rp->filter == REPLICACAO__READ_REQUEST__FILTER__PROCESSED ? st.processed
              : rp->filter == REPLICACAO__READ_REQUEST__FILTER__SYNCED  ? st.synced
                                                                        : st.processed + st.synced;
    r.consistency = (Replicacao__ReadRequest__Consistency)rp->consistency;
    r.first_index = kept_from;
    r.compacted = compacted;
    if (refused != NULL) {
        r.status = (Replicacao__ClientReply__Status)refused->status;
        r.primary = (char *)(refused->primary ? refused->primary : "");
        r.primary_address = (char *)address_of(n, refused->primary);
        r.message = (char *)(refused->message ? refused->message : "");
    }
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REPLY;
    env.read_reply = &r;
    conn_queue(c, &env);
    for (size_t i = 0; copies != NULL && i < count; i++) {
        free(copies[i]);
    }
    free(copies);
    free(entries);
    free(ptrs);
}

/* Serializable reads are this replica's own view, answered now; a
 * linearizable one waits for the core's ReadIndex (sink_reply). */
static void handle_read(struct node *n, struct conn *c, const Replicacao__ReadRequest *req)
{
    struct read_params rp = {
        .call_id = req->call_id,
        .after = req->after,
        .limit = req->limit,
        .filter = req->filter,
        .consistency = req->consistency,
    };
    if (req->consistency != REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE) {
        send_read_reply(n, c, &rp, NULL);
        return;
    }
    uint64_t token = call_new(n, c, req->call_id);
    if (token != 0) {
        struct call *call = (struct call *)(uintptr_t)token;
        call->is_read = true;
        call->read = rp;
        core_read_index(n->core, now_ms(), token);
    }
}

static void handle_core_message(struct node *n, struct conn *c, const Envelope *env)
{
    if (conn_is_client(c) || strcmp(env->from, conn_peer_id(c)) != 0) {
        conn_reject(c, "replica message from a client or under another id");
        return;
    }
    struct core_msg m;
    struct core_entry *scratch;
    char err[128];
    int rc = codec_to_core(env, &m, &scratch, err, sizeof(err));
    if (rc < 0) {
        conn_reject(c, err);
        return;
    }
    if (env->body_case == REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE) {
        rtt_answered(n, env->from, env->append_response);
    }
    core_recv(n->core, now_ms(), &m);
    free(scratch);
}

/* ========================================================================
 * Transport callbacks
 * ====================================================================== */

static void on_hello(struct transport *t, struct conn *c)
{
    struct node *n = transport_data(t);
    struct conn_state *cs = calloc(1, sizeof(*cs));
    if (cs == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    conn_set_data(c, cs);
    if (!conn_is_client(c) && conn_is_outbound(c)) {
        log_info("connected to %s", conn_describe(c));
        core_peer_up(n->core, now_ms(), conn_peer_id(c));
    }
}

/* A stranger, or a member with another secret, was turned away: the
 * dashboard shows it (the transport calls at most once a second). */
static void on_refused(struct transport *t, const char *who, const char *why, uint64_t more)
{
    char detail[sizeof(((struct core_event *)0)->detail)];
    if (more > 0) {
        snprintf(detail, sizeof(detail), "%s: %s (and %" PRIu64 " more refused)", who, why, more);
    } else {
        snprintf(detail, sizeof(detail), "%s: %s", who, why);
    }
    node_event(transport_data(t), EVENT_HANDSHAKE_REFUSED, detail);
}

static void on_message(struct transport *t, struct conn *c, const Envelope *env)
{
    struct node *n = transport_data(t);
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST:
    case REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE:
    case REPLICACAO__ENVELOPE__BODY_APPEND:
    case REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE:
    case REPLICACAO__ENVELOPE__BODY_TIMEOUT_NOW:
    case REPLICACAO__ENVELOPE__BODY_INSTALL_SNAPSHOT:
        handle_core_message(n, c, env);
        break;
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST:
        handle_client_request(n, c, env->client_request);
        break;
    case REPLICACAO__ENVELOPE__BODY_REMOVE_MEMBER:
        handle_remove_member(n, c, env->remove_member);
        break;
    case REPLICACAO__ENVELOPE__BODY_FORCE_CONFIG:
        handle_force_config(n, c, env->force_config);
        break;
    case REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST:
        handle_status(n, c, env->status_request->call_id);
        break;
    case REPLICACAO__ENVELOPE__BODY_READ_REQUEST:
        handle_read(n, c, env->read_request);
        break;
    case REPLICACAO__ENVELOPE__BODY_SUBSCRIBE: {
        struct conn_state *cs = conn_get_data(c);
        cs->subscribed = true;
        if (env->subscribe->traffic && !cs->traffic) {
            cs->traffic = true;
            n->traffic_subs++;
        }
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_SET_FAULTS:
        if (!conn_is_client(c)) {
            conn_reject(c, "fault rules from a replica");
            break;
        }
        handle_set_faults(n, c, env->set_faults);
        break;
    case REPLICACAO__ENVELOPE__BODY_SET_TIMING:
        if (!conn_is_client(c)) {
            conn_reject(c, "timing from a replica");
            break;
        }
        handle_set_timing(n, c, env->set_timing);
        break;
    case REPLICACAO__ENVELOPE__BODY_FAIL:
        /* A simulated crash: no flush, no goodbye. What was not fsynced is
         * lost exactly as in a real crash, and nothing unsynced was sent. */
        log_warn("failing on request from %s: %s", conn_describe(c), env->fail->reason);
        _exit(NODE_EXIT_FAILED);
    default: {
        char why[96];
        snprintf(why, sizeof(why), "unexpected message '%s'", wire_body_name(env));
        reply_error(n, c, why);
        conn_reject(c, why);
        break;
    }
    }
}

static void on_closed(struct transport *t, struct conn *c)
{
    struct conn_state *cs = conn_get_data(c);
    if (cs == NULL) {
        return;
    }
    if (!conn_is_client(c)) {
        rtt_cancel(transport_data(t), conn_peer_id(c));
    }
    if (cs->traffic) {
        ((struct node *)transport_data(t))->traffic_subs--;
    }
    while (cs->calls) {
        call_unlink(cs->calls); /* the core still owns the call; freed at reply */
    }
    free(cs);
    conn_set_data(c, NULL);
}

static void on_peer_gone(struct transport *t, const char *id)
{
    struct node *n = transport_data(t);
    core_peer_down(n->core, now_ms(), id);
}

/* ========================================================================
 * Life cycle
 * ====================================================================== */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void transport_closed(struct transport *t)
{
    struct node *n = transport_data(t);
    close_handle((uv_handle_t *)&n->tick_timer);
    close_handle((uv_handle_t *)&n->disk_timer);
    close_handle((uv_handle_t *)&n->traffic_timer);
    close_handle((uv_handle_t *)&n->flush_prep);
    close_handle((uv_handle_t *)&n->sig_term);
    close_handle((uv_handle_t *)&n->sig_int);
}

static void discovery_stopped(void *arg)
{
    (void)arg;
}

static void signal_cb(uv_signal_t *sig, int signum)
{
    struct node *n = sig->data;
    if (n->stopping) {
        return;
    }
    log_info("signal %d: shutting down", signum);
    n->stopping = true;
    core_stop(n->core);
    /* Make what is buffered durable and send it before closing. */
    flush_cb(&n->flush_prep);
    uv_timer_stop(&n->tick_timer);
    uv_timer_stop(&n->disk_timer);
    uv_timer_stop(&n->traffic_timer);
    discovery_stop(n->disc, discovery_stopped, NULL);
    transport_close(n->t, transport_closed);
}

static int node_open_log(struct node *n, int64_t now)
{
    struct wal_recovered rec;
    char err[512];
    struct wal_options wo = {.segment_bytes = n->o.segment_bytes};
    int rc = wal_open(n->o.data_dir, &wo, &n->wal, &rec, err, sizeof(err));
    if (rc < 0) {
        log_error("data dir %s: %s", n->o.data_dir, err);
        return rc;
    }
    struct core_options co = {
        .id = n->o.id,
        .heartbeat_ms = n->o.heartbeat_ms,
        .election_min_ms = n->o.election_min_ms,
        .election_max_ms = n->o.election_max_ms,
        .initial_size = n->o.initial_size,
        .dead_member_timeout_ms = n->o.dead_member_timeout_ms,
        .max_request_bytes = n->o.max_request_bytes,
        .session_max = n->o.session_max,
        .session_ttl_ms = n->o.session_ttl_ms,
        /* Keep one Append well inside a frame, and what a catch-up holds in
         * flight (8 Appends per peer, each also copied and encoded) small:
         * 1 MiB batches stream as fast as bigger ones. */
        .max_append_bytes =
            n->o.max_frame_bytes / 4 < (1u << 20) ? n->o.max_frame_bytes / 4 : (1u << 20),
        .random = random_cb,
        .wall_clock = wall_clock_cb,
        .arg = n,
        /* Entries stay in the log files; the core keeps recent ones. */
        .store = wal_store(n->wal),
    };
    n->core = core_open(&co, &rec.core, now);
    log_info("recovered epoch=%llu entries=%llu commit>=%llu in %llu segment(s) from %s",
             (unsigned long long)rec.core.hs.epoch, (unsigned long long)rec.core.last_index,
             (unsigned long long)rec.core.checkpoint.commit,
             (unsigned long long)wal_segment_count(n->wal), n->o.data_dir);
    if (n->core == NULL) {
        log_error("data dir %s: cannot start from the recovered log (%s)", n->o.data_dir,
                  wal_last_error(n->wal)[0] ? wal_last_error(n->wal) : "out of memory");
    }
    wal_recovered_free(&rec);
    return n->core ? 0 : UV_ENOMEM;
}

int node_run(const struct node_options *o)
{
    struct node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return 1;
    }
    n->o = *o;
    n->started_ms = now_ms();
    n->rng = (uint64_t)clock_wall_ms() * 6364136223846793005ULL ^ (uint64_t)getpid();
    n->sink = (struct core_sink){
        .data = n,
        .persist_state = sink_persist_state,
        .persist_entries = sink_persist_entries,
        .persist_checkpoint = sink_persist_checkpoint,
        .persist_snapshot = sink_persist_snapshot,
        .sync = sink_sync,
        .send = sink_send,
        .reply = sink_reply,
        .event = sink_event,
    };
    uv_loop_init(&n->loop);
    int rc = node_open_log(n, n->started_ms);
    if (rc < 0) {
        free(n);
        return 1;
    }
    struct transport_options to = {
        .self_id = o->id,
        .name = o->name,
        .advertise = o->advertise,
        .max_frame_bytes = o->max_frame_bytes,
        .auth = o->auth,
    };
    struct transport_callbacks cb = {
        .data = n,
        .on_hello = on_hello,
        .on_message = on_message,
        .on_closed = on_closed,
        .on_refused = on_refused,
        .on_peer_gone = on_peer_gone,
    };
    n->t = transport_new(&n->loop, &to, &cb);
    char err[256];
    if (n->t == NULL || transport_listen(n->t, o->listen, err, sizeof(err)) < 0) {
        log_error("%s", n->t ? err : "out of memory");
        return 1;
    }
    uv_timer_init(&n->loop, &n->tick_timer);
    n->tick_timer.data = n;
    uv_timer_init(&n->loop, &n->disk_timer);
    n->disk_timer.data = n;
    uv_timer_init(&n->loop, &n->traffic_timer);
    n->traffic_timer.data = n;
    uv_timer_start(&n->traffic_timer, traffic_timer_cb, TRAFFIC_EVERY_MS, TRAFFIC_EVERY_MS);
    snprintf(n->disk, sizeof(n->disk), "ok");
    uv_prepare_init(&n->loop, &n->flush_prep);
    n->flush_prep.data = n;
    uv_prepare_start(&n->flush_prep, flush_cb);
    uv_signal_init(&n->loop, &n->sig_term);
    uv_signal_init(&n->loop, &n->sig_int);
    n->sig_term.data = n->sig_int.data = n;
    uv_signal_start(&n->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&n->sig_int, signal_cb, SIGINT);
    n->disc = discovery_start(&n->loop, n->t, &o->peers, o->resolve_interval_ms);
    log_info("replica %s (%s) listening on %s, advertising %s, %u peer address(es)", o->id, o->name,
             o->listen, o->advertise, o->peers.n);

    uv_run(&n->loop, UV_RUN_DEFAULT);

    int code = n->exit_code;
    wal_close(n->wal);
    core_free(n->core);
    transport_free(n->t);
    uv_loop_close(&n->loop);
    free(n);
    log_info("stopped");
    return code;
}
