/*
 * tests/sim/storage.c — the sink through which each core's updates are
 * carried out (with the production core_update_apply), and the fake durable
 * storage behind it.
 *
 * Durability model: persist_state/persist_entries only queue operations; a
 * node's "fsync" (node_flush) makes all of them durable, confirms the
 * updates they came from (core_advance) and only then releases everything
 * the node sent or replied since, except early messages (a primary's
 * Appends), which core_update_apply hands over before the persistence and
 * which leave at once. The fsync either runs right after each input or, in
 * some schedules, completes a few ms later while the node keeps taking
 * inputs (group commit); a crash in between loses the pending operations,
 * the unconfirmed updates and the unreleased output, exactly what a real
 * crash before fsync loses.
 */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_push(struct sim_node *n, struct sim_event *ev)
{
    if (n->n_out == n->cap_out) {
        n->cap_out = n->cap_out ? n->cap_out * 2 : 16;
        n->out = sim_realloc(n->out, n->cap_out * sizeof(*n->out));
    }
    n->out[n->n_out++] = ev;
}

static void io_send(struct core_sink *io, const char *to, const struct core_msg *m, bool early)
{
    struct sim_node *n = io->data;
    struct cluster *cl = n->cl;
    int t = cluster_node_index(cl, to);
    if (t < 0 || t == n->idx) {
        sim_fail(cl, "%s sent %s to '%s' (unknown or itself)", n->id, msg_name(m->type), to);
        return;
    }
    struct sim_event *ev = event_new(cl, EV_MSG);
    ev->from = n->idx;
    ev->to = t;
    ev->msg = *m;
    ev->msg.from = NULL;
    if (m->type == CORE_MSG_VOTE_REQUEST) {
        unsigned nb = m->vote_request.n_bootstrap;
        if (nb > CORE_MAX_MEMBERS) {
            sim_fail(cl, "%s sent a bootstrap list of %u ids", n->id, nb);
            nb = 0;
        }
        ev->msg.vote_request.n_bootstrap = nb;
        ev->msg.vote_request.bootstrap = NULL;
        if (nb) {
            ev->bootstrap_ids = sim_realloc(NULL, nb * sizeof(*ev->bootstrap_ids));
            ev->bootstrap = sim_realloc(NULL, nb * sizeof(*ev->bootstrap));
            for (unsigned i = 0; i < nb; i++) {
                snprintf(ev->bootstrap_ids[i], CORE_ID_MAX, "%s", m->vote_request.bootstrap[i]);
                ev->bootstrap[i] = ev->bootstrap_ids[i];
            }
            ev->msg.vote_request.bootstrap = ev->bootstrap;
        }
    }
    if (m->type == CORE_MSG_SNAPSHOT) {
        ev->snap_data = sim_realloc(NULL, m->snapshot.len + 1);
        memcpy(ev->snap_data, m->snapshot.data, m->snapshot.len);
        ev->msg.snapshot.data = ev->snap_data;
    }
    if (m->type == CORE_MSG_APPEND) {
        size_t ne = m->append.n_entries;
        ev->msg.append.entries = NULL;
        if (ne) {
            ev->entries = sim_realloc(NULL, ne * sizeof(*ev->entries));
            ev->entry_refs = sim_realloc(NULL, ne * sizeof(*ev->entry_refs));
            for (size_t i = 0; i < ne; i++) {
                ev->entry_refs[i] = entry_copy(&m->append.entries[i]);
                ev->entries[i] = ev->entry_refs[i]->e;
            }
            ev->msg.append.entries = ev->entries;
        }
    }
    if (early) {
        release_msg(cl, ev); /* on the wire before the fsync */
    } else {
        out_push(n, ev);
    }
}

static void op_push(struct sim_node *n, struct sim_op *op)
{
    if (n->n_ops == n->cap_ops) {
        n->cap_ops = n->cap_ops ? n->cap_ops * 2 : 8;
        n->ops = sim_realloc(n->ops, n->cap_ops * sizeof(*n->ops));
    }
    n->ops[n->n_ops++] = *op;
}

static void io_persist_state(struct core_sink *io, const struct core_hard_state *hs)
{
    struct sim_node *n = io->data;
    struct sim_op op = {.is_state = true, .hs = *hs};
    op_push(n, &op);
    n->mem_hs = *hs;
}

static void apply_entries(struct sim_log *l, uint64_t truncate_from, struct sim_entry **e, size_t n)
{
    if (truncate_from) {
        simlog_truncate(l, truncate_from);
    }
    for (size_t i = 0; i < n; i++) {
        e[i]->refs++;
        simlog_append(l, e[i]);
    }
}

static void io_persist_entries(struct core_sink *io, uint64_t truncate_from,
                               const struct core_entry *entries, size_t ne)
{
    struct sim_node *n = io->data;
    struct cluster *cl = n->cl;
    struct sim_op op = {.truncate_from = truncate_from, .n = ne};
    op.entries = ne ? sim_realloc(NULL, ne * sizeof(*op.entries)) : NULL;
    uint64_t next =
        (truncate_from && truncate_from <= n->mem.len ? truncate_from - 1 : n->mem.len) + 1;
    for (size_t i = 0; i < ne; i++) {
        op.entries[i] = entry_copy(&entries[i]);
        if (entries[i].index != next + i) {
            sim_fail(cl, "%s persist_entries: entry %zu has index %" PRIu64 ", expected %" PRIu64,
                     n->id, i, entries[i].index, next + i);
        }
    }
    op_push(n, &op);
    apply_entries(&n->mem, truncate_from, op.entries, ne);
    if (truncate_from) {
        check_truncate(cl, n, truncate_from);
    }
}

static void io_reply(struct core_sink *io, uint64_t token, const struct core_reply *r)
{
    struct sim_node *n = io->data;
    struct cluster *cl = n->cl;
    struct sim_event *ev = event_new(cl, EV_CLIENT_REPLY);
    ev->from = n->idx;
    ev->token = token;
    ev->reply = *r;
    snprintf(ev->reply_primary, sizeof(ev->reply_primary), "%s", r->primary ? r->primary : "");
    ev->reply.primary = ev->reply_primary;
    ev->reply.message = NULL; /* not needed after the callback */
    out_push(n, ev);
}

/* A "removed" event must name the replica the change removed: after it,
 * one the configuration no longer has. (The automatic cleanup once named
 * another: it passed a pointer into the member list it then shifted.) */
static void check_removed_event(struct sim_node *n, const struct core_event *e)
{
    struct cluster *cl = n->cl;
    struct core_config cfg;
    uint64_t index;
    node_config(n, &cfg, &index);
    if (e->subject[0] != '\0' && !config_is_member(&cfg, e->subject)) {
        return;
    }
    cl->ms.bad_removed_events++;
    sim_fail(cl, "%s: a \"removed\" event names '%s', %s", n->id, e->subject,
             e->subject[0] ? "still a member" : "nobody");
}

static void io_event(struct core_sink *io, const struct core_event *e)
{
    struct sim_node *n = io->data;
    if (e->type == EVENT_REMOVED) {
        check_removed_event(n, e);
    }
    if (e->type == EVENT_ELECTED) {
        n->cl->elections++;
    } else if (e->type == EVENT_ELECTION_STARTED) {
        n->cl->elections_started++;
    }
    sim_trace(n->cl, "%s event %s subject=%s epoch=%" PRIu64 " index=%" PRIu64 " %s", n->id,
              event_name(e->type), e->subject, e->epoch, e->index, e->detail);
}

static void io_persist_checkpoint(struct core_sink *io, const struct core_checkpoint *cp)
{
    struct sim_node *n = io->data;
    struct sim_op op = {.is_checkpoint = true, .cp = *cp};
    op_push(n, &op);
}

/* A snapshot to keep. Installed (reset), it replaces the log: the entries
 * it stands for are the committed log's, which the checker verifies, and
 * the arrays keep them so the checks compare whole logs. */
static void io_persist_snapshot(struct core_sink *io, const struct core_update *u)
{
    struct sim_node *n = io->data;
    struct cluster *cl = n->cl;
    struct sim_op op = {.is_snapshot = true,
                        .snap_reset = u->snapshot_reset,
                        .snap_index = u->snapshot_index,
                        .snap_len = u->snapshot_len,
                        .drop_before = u->drop_before};
    op.snap_data = sim_realloc(NULL, u->snapshot_len + 1);
    memcpy(op.snap_data, u->snapshot_data, u->snapshot_len);
    uint64_t s = u->snapshot_index;
    op.snap_epoch = u->snapshot_epoch;
    /* One installed came from a primary whose commit the checker saw when
     * the message left; one taken here is checked at this node's flush. */
    if (u->snapshot_reset &&
        (s > cl->n_committed || cl->committed[s - 1]->e.epoch != u->snapshot_epoch)) {
        sim_fail(cl, "%s installs a snapshot at %" PRIu64 "/%" PRIu64 " that is not committed",
                 n->id, s, u->snapshot_epoch);
    } else if (u->snapshot_reset) {
        simlog_truncate(&n->mem, 1);
        for (uint64_t i = 1; i <= s; i++) {
            cl->committed[i - 1]->refs++;
            simlog_append(&n->mem, cl->committed[i - 1]);
        }
    }
    op_push(n, &op);
}

/* The core's reads of entries it no longer caches: from what is durable,
 * which is all the core may ask for, and never what retention dropped. */
static int store_read(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
                      const struct core_entry **out, size_t *count)
{
    struct sim_node *n = arg;
    if (lo == 0 || lo > hi || hi > n->durable.len || lo < n->durable_first) {
        sim_fail(n->cl, "%s: the core read entries %" PRIu64 "..%" PRIu64 ", %zu are durable",
                 n->id, lo, hi, n->durable.len);
        return -ERANGE;
    }
    size_t k = 0, bytes = 0;
    while (lo + k <= hi) {
        const struct core_entry *e = &n->durable.at[lo + k - 1]->e;
        if (k > 0 && bytes + e->len + CORE_ENTRY_OVERHEAD > max_bytes) {
            break;
        }
        if (k == n->read_cap) {
            n->read_cap = n->read_cap ? n->read_cap * 2 : 16;
            n->read_buf = sim_realloc(n->read_buf, n->read_cap * sizeof(*n->read_buf));
        }
        n->read_buf[k] = *e;
        if (meta_only) {
            n->read_buf[k].data = NULL;
        }
        bytes += e->len + CORE_ENTRY_OVERHEAD;
        k++;
    }
    *out = n->read_buf;
    *count = k;
    return 0;
}

/* The flush is scheduled by node_after_input, which sees the queued ops. */
static bool io_sync(struct core_sink *io)
{
    return true;
}

static uint64_t io_random(void *arg)
{
    struct sim_node *n = arg;
    return rng_next(&n->rng);
}

/* Wall clocks differ a little between machines; entries must carry the
 * primary's stamp unchanged. */
static int64_t io_wall_clock(void *arg)
{
    struct sim_node *n = arg;
    return 1700000000000LL + n->cl->now + n->idx * 7;
}

/* Take every update the core has ready and carry it out; each is confirmed
 * at the next flush. */
void node_drain(struct cluster *cl, struct sim_node *n)
{
    struct core_update u;
    while (n->core != NULL && core_ready(n->core, &u)) {
        core_update_apply(&u, &n->sink);
        if (n->n_held == n->cap_held) {
            n->cap_held = n->cap_held ? n->cap_held * 2 : 8;
            n->held = sim_realloc(n->held, n->cap_held * sizeof(*n->held));
        }
        n->held[n->n_held++] = u;
    }
}

void node_discard_pending(struct sim_node *n)
{
    for (size_t i = 0; i < n->n_ops; i++) {
        for (size_t j = 0; j < n->ops[i].n; j++) {
            entry_unref(n->ops[i].entries[j]);
        }
        free(n->ops[i].entries);
        free(n->ops[i].snap_data);
    }
    n->n_ops = 0;
    for (size_t i = 0; i < n->n_out; i++) {
        event_free(n->out[i]);
    }
    n->n_out = 0;
    for (size_t i = 0; i < n->n_held; i++) {
        core_update_free(&n->held[i]);
    }
    n->n_held = 0;
    n->flush_at = SIM_NEVER;
}

/* The pending fsync completes: persistence becomes durable, then (and only
 * then) the output it guards leaves the node. */
void node_flush(struct cluster *cl, struct sim_node *n)
{
    for (size_t i = 0; i < n->n_ops; i++) {
        struct sim_op *op = &n->ops[i];
        if (op->is_state) {
            n->durable_hs = op->hs;
        } else if (op->is_checkpoint) {
            n->durable_cp = op->cp;
        } else if (op->is_snapshot) {
            free(n->durable_snap);
            n->durable_snap = op->snap_data;
            n->durable_snap_len = op->snap_len;
            n->durable_snap_index = op->snap_index;
            n->durable_snap_epoch = op->snap_epoch;
            n->durable_first =
                op->drop_before > n->durable_first ? op->drop_before : n->durable_first;
            if (op->snap_reset) {
                simlog_truncate(&n->durable, 1);
                for (uint64_t i = 1; i <= op->snap_index; i++) {
                    n->cl->committed[i - 1]->refs++;
                    simlog_append(&n->durable, n->cl->committed[i - 1]);
                }
                n->durable_first = op->snap_index + 1;
            }
        } else {
            apply_entries(&n->durable, op->truncate_from, op->entries, op->n);
            for (size_t j = 0; j < op->n; j++) {
                entry_unref(op->entries[j]);
            }
            free(op->entries);
        }
    }
    n->n_ops = 0;
    n->flush_at = SIM_NEVER;
    /* Confirm the updates: the core may now count its own log, commit and
     * answer; what that makes necessary is carried out below. */
    size_t n_held = n->n_held;
    n->n_held = 0;
    for (size_t i = 0; i < n_held; i++) {
        core_advance(n->core, cl->now, &n->held[i]);
        core_update_free(&n->held[i]);
    }
    node_drain(cl, n);
    check_at_flush(cl, n);
    uint64_t s = n->durable_snap_index;
    if (s > 0 && (s > cl->n_committed || cl->committed[s - 1]->e.epoch != n->durable_snap_epoch)) {
        sim_fail(cl, "%s keeps a snapshot at %" PRIu64 "/%" PRIu64 " that is not committed", n->id,
                 s, n->durable_snap_epoch);
    }
    size_t n_out = n->n_out;
    n->n_out = 0;
    for (size_t i = 0; i < n_out; i++) {
        struct sim_event *ev = n->out[i];
        if (ev->kind == EV_MSG) {
            release_msg(cl, ev);
            continue;
        }
        if (ev->token > SIM_ADMIN_TOKEN) {
            admin_on_reply(cl, n, ev); /* the operator's answer */
            event_free(ev);
            continue;
        }
        if (!SIM_IS_READ(ev->token)) {
            check_reply(cl, n, ev); /* reads are checked where the client gets them */
        }
        if (cl->drop_client_replies ||
            rng_permille(&cl->rng, cl->extra_drop_permille / 2 + cl->p.drop_permille)) {
            sim_trace(cl, "%s reply to token %" PRIu64 " dropped", n->id, ev->token);
            event_free(ev);
            continue;
        }
        ev->at = cl->now + rng_between(&cl->rng, 1, 5);
        heap_push(cl, ev);
    }
}

void node_io_init(struct sim_node *n)
{
    n->sink = (struct core_sink){
        .data = n,
        .persist_state = io_persist_state,
        .persist_entries = io_persist_entries,
        .persist_checkpoint = io_persist_checkpoint,
        .persist_snapshot = io_persist_snapshot,
        .sync = io_sync,
        .send = io_send,
        .reply = io_reply,
        .event = io_event,
    };
    n->opts.random = io_random;
    n->opts.wall_clock = io_wall_clock;
    n->opts.arg = n;
    n->opts.store = (struct core_store){.arg = n, .read = store_read};
}
