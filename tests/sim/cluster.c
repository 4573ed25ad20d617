/*
 * tests/sim/cluster.c — the simulated cluster: its nodes' life cycle (boot,
 * kill, revive, pause), partitions, the inputs a core gets, and the step
 * function that fires the earliest event on one fake clock (like
 * canonical/raft's raft_fixture_step). Storage and io live in storage.c,
 * the network in net.c.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ========================================================================
 * Tracing and failures
 * ====================================================================== */

void sim_trace(const struct cluster *cl, const char *fmt, ...)
{
    if (!cl->verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("%7" PRId64 " ", cl->now);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

void sim_fail(struct cluster *cl, const char *fmt, ...)
{
    if (cl->failed) {
        return; /* the first violation is the one worth reading */
    }
    cl->failed = true;
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    if (cl->scenario) {
        fprintf(stderr, "sim: FAIL scenario %s (seed %" PRIu64 ") at t=%" PRId64 ": ", cl->scenario,
                cl->seed, cl->now);
    } else {
        fprintf(stderr, "sim: FAIL %sseed %" PRIu64 " (%u nodes) at t=%" PRId64 ": ",
                cl->replay_membership ? "membership " : "", cl->seed, cl->p.nodes, cl->now);
    }
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    cluster_dump(cl);
    if (cl->scenario) {
        fprintf(stderr, "  replay: sim --scenario %s --seed %" PRIu64 " --verbose\n", cl->scenario,
                cl->seed);
    } else {
        char nodes[32] = "";
        if (cl->replay_nodes) {
            snprintf(nodes, sizeof(nodes), " --nodes %u", cl->replay_nodes);
        }
        fprintf(stderr, "  replay: sim --%sseed %" PRIu64 "%s --verbose\n",
                cl->replay_membership ? "membership-" : "", cl->seed, nodes);
    }
}

void cluster_dump(const struct cluster *cl)
{
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        const struct sim_node *n = &cl->nodes[i];
        if (n->core == NULL) {
            fprintf(stderr, "  %s: %s (durable last %zu, epoch %" PRIu64 ")%s\n", n->id,
                    n->retired ? "retired" : "dead", n->durable.len, n->durable_hs.epoch,
                    n->listed ? "" : " unlisted");
            continue;
        }
        fprintf(stderr,
                "  %s: %s%s epoch %" PRIu64 " last %" PRIu64 " commit %" PRIu64
                " primary '%s' group %d\n",
                n->id, role_name((enum role)core_role(n->core)), n->paused ? " (paused)" : "",
                core_epoch(n->core), core_last_index(n->core), core_commit_index(n->core),
                core_primary(n->core), n->group);
    }
    fprintf(stderr, "  committed log: %zu entries\n", cl->n_committed);
    if (cl->cfg_last.n) {
        char buf[512];
        config_describe(&cl->cfg_last, buf, sizeof(buf));
        fprintf(stderr, "  last committed configuration (index %" PRIu64 "): %s\n",
                cl->cfgs[cl->n_cfgs - 1].index, buf);
    }
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        const struct sim_node *n = &cl->nodes[i];
        if (n->core != NULL) {
            struct core_config cfg;
            uint64_t index;
            char buf[512];
            node_config(n, &cfg, &index);
            config_describe(&cfg, buf, sizeof(buf));
            fprintf(stderr, "  %s's configuration (index %" PRIu64 "): %s\n", n->id, index, buf);
        }
    }
}

/* ========================================================================
 * Construction
 * ====================================================================== */

/* Slot i gets its id ("r<i+1>", never reused) and options; it stays dead
 * until booted. */
static void node_slot_init(struct cluster *cl, unsigned i)
{
    struct sim_node *n = &cl->nodes[i];
    n->cl = cl;
    n->idx = (int)i;
    snprintf(n->id, sizeof(n->id), "r%u", i + 1);
    n->opts = (struct core_options){
        .id = n->id,
        .heartbeat_ms = 50,
        .election_min_ms = 300,
        .election_max_ms = 600,
        .initial_size = cl->cfgs[0].voters, /* nodes added later too */
        .max_append_bytes = cl->p.max_append_bytes,
        .cache_bytes = cl->p.cache_bytes,
        .session_max = cl->p.session_max,
        .session_ttl_ms = cl->p.session_ttl_ms,
        .max_request_bytes = 1 << 20,
        .dead_member_timeout_ms = cl->p.dead_member_timeout_ms,
    };
    node_io_init(n);
    n->flush_at = SIM_NEVER;
    n->listed = true;
}

struct cluster *cluster_new(const struct sim_params *p, uint64_t seed, bool verbose)
{
    struct cluster *cl = sim_realloc(NULL, sizeof(*cl));
    memset(cl, 0, sizeof(*cl));
    cl->p = *p;
    cl->seed = seed;
    cl->verbose = verbose;
    cl->rng.s = seed ^ 0x5151515151515151ULL;
    cl->hook_at = SIM_NEVER;
    /* Until the first CONFIG entry commits, the bootstrap members count. */
    cl->cap_cfgs = 16;
    cl->cfgs = sim_realloc(NULL, cl->cap_cfgs * sizeof(*cl->cfgs));
    cl->cfgs[0] = (struct sim_cfgrec){.voters = p->initial_size ? p->initial_size : p->nodes};
    cl->n_cfgs = 1;
    for (unsigned i = 0; i < p->nodes; i++) {
        node_slot_init(cl, i);
    }
    for (unsigned k = 0; k < p->clients; k++) {
        client_init(cl, (int)k);
    }
    return cl;
}

void cluster_free(struct cluster *cl)
{
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        struct sim_node *n = &cl->nodes[i];
        if (n->core) {
            core_free(n->core);
        }
        node_discard_pending(n);
        free(n->ops);
        free(n->read_buf);
        free(n->out);
        free(n->held);
        simlog_free(&n->durable);
        free(n->durable_snap);
        simlog_free(&n->mem);
    }
    for (size_t i = 0; i < cl->n_heap; i++) {
        event_free(cl->heap[i]);
    }
    free(cl->heap);
    for (unsigned k = 0; k < cl->p.clients; k++) {
        client_free(&cl->clients[k]);
    }
    free(cl->attempts);
    for (size_t i = 0; i < cl->n_committed; i++) {
        entry_unref(cl->committed[i]);
    }
    free(cl->committed);
    free(cl->committed_cfg);
    free(cl->cfgs);
    free(cl->admin);
    free(cl->epoch_primary);
    free(cl->epoch_commit);
    free(cl);
}

int cluster_node_index(const struct cluster *cl, const char *id)
{
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        if (strcmp(cl->nodes[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

unsigned cluster_alive(const struct cluster *cl)
{
    unsigned a = 0;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        a += cl->nodes[i].alive;
    }
    return a;
}

/* ========================================================================
 * Inputs, flushes and delivery
 * ====================================================================== */

/* Every input ends the same way: the core's batch flush, the checks, then
 * the fsync (at once or a little later). */
void node_after_input(struct cluster *cl, struct sim_node *n)
{
    core_flush(n->core, cl->now);
    node_drain(cl, n);
    node_apply_listing(cl, n);
    check_after_input(cl, n);
    /* Retention: compact once twice `retain` entries are committed past
     * the first one kept, as the replica does (after the check above has
     * seen the commit the snapshot stands for). */
    if (n->core && cl->p.retain &&
        core_commit_index(n->core) >= core_first_index(n->core) + 2 * cl->p.retain &&
        core_compact(n->core, cl->now, cl->p.retain)) {
        cl->compactions++;
        node_drain(cl, n);
    }
    if (n->core) {
        enum core_role r = core_role(n->core);
        uint64_t e = core_epoch(n->core);
        if (r != n->last_role || e != n->last_epoch) {
            sim_trace(cl, "%s is %s in epoch %" PRIu64 " (last %" PRIu64 " commit %" PRIu64 ")",
                      n->id, role_name((enum role)r), e, core_last_index(n->core),
                      core_commit_index(n->core));
            bool elected = r == CORE_PRIMARY && n->last_role != CORE_PRIMARY;
            n->last_role = r;
            n->last_epoch = e;
            if (elected) {
                check_elected(cl, n);
            }
            if (elected && cl->on_elected && !cl->failed) {
                cl->on_elected(cl, n->idx);
            }
        }
    }
    if (n->n_ops == 0 && n->n_out == 0 && n->n_held == 0) {
        return;
    }
    int64_t lat = n->fsync_ms       ? n->fsync_ms
                  : cl->p.fsync_max ? rng_between(&cl->rng, 0, cl->p.fsync_max)
                                    : 0;
    if (lat == 0 && n->flush_at == SIM_NEVER) {
        node_flush(cl, n);
    } else if (n->flush_at == SIM_NEVER) {
        n->flush_at = cl->now + lat;
    }
}

static void peer_up(struct cluster *cl, int a, int b)
{
    struct sim_node *n = &cl->nodes[a];
    if (!n->alive || !cl->nodes[b].alive) {
        return;
    }
    if (n->paused) {
        /* The kernel accepts the connection; the process identifies it
         * once it runs again. */
        struct sim_event *ev = cluster_event(cl, EV_PEER_UP, n->paused_until);
        ev->to = a;
        ev->from = b;
        return;
    }
    core_peer_up(n->core, cl->now, cl->nodes[b].id);
    node_after_input(cl, n);
}

/* Events that need the node awake wait, like bytes in a stopped process's
 * socket buffer. */
static bool held_by_pause(struct cluster *cl, struct sim_event *ev)
{
    if (ev->to < 0 || ev->kind == EV_REVIVE || ev->kind == EV_RESUME || ev->kind == EV_RETIRE ||
        ev->kind == EV_CALL) {
        return false;
    }
    struct sim_node *to = &cl->nodes[ev->to];
    if (!to->alive || !to->paused) {
        return false;
    }
    ev->at = to->paused_until > cl->now ? to->paused_until : cl->now + 1;
    heap_push(cl, ev);
    return true;
}

static void fire_event(struct cluster *cl, struct sim_event *ev)
{
    if (held_by_pause(cl, ev)) {
        return;
    }
    switch (ev->kind) {
    case EV_MSG:
        deliver_msg(cl, ev);
        break;
    case EV_CLIENT_REQ:
        deliver_request(cl, ev);
        break;
    case EV_CLIENT_REPLY:
        client_on_reply(cl, ev);
        break;
    case EV_PEER_DOWN: {
        struct sim_node *n = &cl->nodes[ev->to];
        if (n->alive && !cl->nodes[ev->from].alive) {
            sim_trace(cl, "%s sees %s down", n->id, cl->nodes[ev->from].id);
            core_peer_down(n->core, cl->now, cl->nodes[ev->from].id);
            node_after_input(cl, n);
        }
        break;
    }
    case EV_PEER_UP:
        if (cluster_connected(cl, ev->to, ev->from)) {
            peer_up(cl, ev->to, ev->from);
        }
        break;
    case EV_REVIVE:
        if (!cl->nodes[ev->to].alive && cl->nodes[ev->to].kill_gen == ev->gen) {
            cluster_revive(cl, ev->to);
        }
        break;
    case EV_HEAL:
        if (cl->partition_gen == ev->gen) {
            cluster_heal(cl);
        }
        break;
    case EV_RESUME:
        if (cl->nodes[ev->to].paused && cl->nodes[ev->to].pause_gen == ev->gen) {
            cluster_resume(cl, ev->to);
        }
        break;
    case EV_KILL:
        if (cl->nodes[ev->to].alive && cl->nodes[ev->to].incarnation == ev->gen) {
            cluster_kill(cl, ev->to, ev->from != 0);
            struct sim_event *back = cluster_event(cl, EV_REVIVE, cl->now + ev->arg);
            back->to = ev->to;
            back->gen = cl->nodes[ev->to].kill_gen;
        }
        break;
    case EV_ADMIN:
        deliver_admin(cl, ev);
        break;
    case EV_RETIRE:
        cluster_retire(cl, ev->to);
        break;
    case EV_CALL:
        ev->fn(cl, ev);
        break;
    case EV_LOSSY_END:
        if (cl->lossy_gen == ev->gen) {
            cl->extra_drop_permille = 0;
            sim_trace(cl, "lossy period ends");
        }
        break;
    }
    event_free(ev);
}

/* ========================================================================
 * The step function
 * ====================================================================== */

enum pick { PICK_NONE, PICK_FLUSH, PICK_EVENT, PICK_TICK, PICK_CLIENT, PICK_HOOK };

bool cluster_step(struct cluster *cl)
{
    if (cl->failed) {
        return false;
    }
    int64_t best = SIM_NEVER;
    enum pick what = PICK_NONE;
    int who = -1;
    /* Ties go to flushes first (output already decided), then deliveries,
     * then timers: the order an event loop would see them in. */
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        struct sim_node *n = &cl->nodes[i];
        if (n->alive && !n->paused && n->flush_at < best) {
            best = n->flush_at;
            what = PICK_FLUSH;
            who = (int)i;
        }
    }
    if (cl->n_heap && cl->heap[0]->at < best) {
        best = cl->heap[0]->at;
        what = PICK_EVENT;
    }
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        struct sim_node *n = &cl->nodes[i];
        if (!n->alive || n->paused) {
            continue;
        }
        int64_t d = core_next_deadline(n->core);
        if (d < cl->now) {
            d = cl->now; /* overdue, e.g. just resumed: fire now */
        }
        if (d < best) {
            best = d;
            what = PICK_TICK;
            who = (int)i;
        }
    }
    for (unsigned k = 0; k < cl->p.clients; k++) {
        if (cl->clients[k].next_action < best) {
            best = cl->clients[k].next_action;
            what = PICK_CLIENT;
            who = (int)k;
        }
    }
    if (cl->hook && cl->hook_at < best) {
        best = cl->hook_at;
        what = PICK_HOOK;
    }
    if (what == PICK_NONE) {
        sim_fail(cl, "nothing left to happen (no timers, no messages)");
        return false;
    }
    if (best < cl->now) {
        best = cl->now;
    }
    cl->same_time_steps = best == cl->now ? cl->same_time_steps + 1 : 0;
    if (cl->same_time_steps > 100000) {
        sim_fail(cl, "time stopped advancing (a deadline that is always due?)");
        return false;
    }
    cl->now = best;
    cl->steps++;
    switch (what) {
    case PICK_FLUSH:
        node_flush(cl, &cl->nodes[who]);
        break;
    case PICK_EVENT:
        fire_event(cl, heap_pop(cl));
        break;
    case PICK_TICK:
        core_tick(cl->nodes[who].core, cl->now);
        node_after_input(cl, &cl->nodes[who]);
        break;
    case PICK_CLIENT:
        client_act(cl, who);
        break;
    case PICK_HOOK:
        cl->hook(cl, cl->hook_data);
        break;
    case PICK_NONE:
        break;
    }
    return !cl->failed;
}

bool cluster_run_until(struct cluster *cl, int64_t until)
{
    while (!cl->failed && cl->now < until) {
        cluster_step(cl);
    }
    return !cl->failed;
}

/* Steps until done() holds; false if it did not within max_ms (or failed). */
bool cluster_step_until(struct cluster *cl, bool (*done)(struct cluster *cl), int64_t max_ms)
{
    int64_t end = cl->now + max_ms;
    while (!cl->failed && !done(cl)) {
        if (cl->now > end) {
            return false;
        }
        cluster_step(cl);
    }
    return !cl->failed;
}

/* ========================================================================
 * Lifecycle and faults
 * ====================================================================== */

/* Boots from what is durable as the replica does: a summary of the log
 * (epoch runs, CONFIG indexes, the last checkpoint), the entries read
 * through the store when needed. */
static void node_boot(struct cluster *cl, struct sim_node *n)
{
    size_t len = n->durable.len;
    struct core_epoch_run *runs = len ? sim_realloc(NULL, len * sizeof(*runs)) : NULL;
    uint64_t *cfgs = len ? sim_realloc(NULL, len * sizeof(*cfgs)) : NULL;
    struct core_recovered r = {.hs = n->durable_hs,
                               .last_index = len,
                               .runs = runs,
                               .config_indexes = cfgs,
                               .checkpoint = n->durable_cp,
                               .snapshot = n->durable_snap,
                               .snapshot_len = n->durable_snap_len};
    /* Like the log files: entries before durable_first are gone. */
    size_t first = n->durable_first > 1 ? (size_t)n->durable_first - 1 : 0;
    for (size_t i = first; i < len; i++) {
        const struct core_entry *e = &n->durable.at[i]->e;
        if (r.n_runs == 0 || runs[r.n_runs - 1].epoch != e->epoch) {
            runs[r.n_runs++] = (struct core_epoch_run){i + 1, e->epoch};
        }
        if (e->type == CORE_ENTRY_CONFIG) {
            cfgs[r.n_config++] = i + 1;
        }
    }
    n->rng.s = cl->seed * 0x100000001b3ULL + (uint64_t)n->idx * 7919 + n->incarnation;
    n->core = core_open(&n->opts, &r, cl->now);
    free(runs);
    free(cfgs);
    if (n->core == NULL) {
        sim_fail(cl, "core_open failed for %s", n->id);
        return;
    }
    n->alive = true;
    n->paused = false;
    n->last_commit = core_commit_index(n->core);
    n->checked = 0;
    n->last_role = core_role(n->core);
    n->last_epoch = core_epoch(n->core);
}

/* Boots the bootstrap members; later ones join by cluster_revive. */
void cluster_start(struct cluster *cl)
{
    unsigned initial = cl->p.initial_size && !cl->p.boot_all ? cl->p.initial_size : cl->p.nodes;
    for (unsigned i = 0; i < initial; i++) {
        node_boot(cl, &cl->nodes[i]);
    }
    /* Discovery finds everybody, one connection at a time, in an order
     * that differs from run to run. */
    int pairs[SIM_MAX_NODES * SIM_MAX_NODES][2], n = 0;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        for (unsigned j = 0; j < cl->p.nodes; j++) {
            if (i != j) {
                pairs[n][0] = (int)i;
                pairs[n++][1] = (int)j;
            }
        }
    }
    for (int k = n - 1; k > 0; k--) {
        int r = (int)rng_between(&cl->rng, 0, k);
        int a = pairs[k][0], b = pairs[k][1];
        pairs[k][0] = pairs[r][0];
        pairs[k][1] = pairs[r][1];
        pairs[r][0] = a;
        pairs[r][1] = b;
    }
    for (int k = 0; k < n && !cl->failed && !cl->p.no_discovery; k++) {
        peer_up(cl, pairs[k][0], pairs[k][1]);
    }
    for (unsigned k = 0; k < cl->p.clients; k++) {
        if (!cl->clients[k].manual) {
            cl->clients[k].next_action = cl->now + rng_between(&cl->rng, 0, 300);
        }
    }
}

void cluster_kill(struct cluster *cl, int i, bool notify_down)
{
    struct sim_node *n = &cl->nodes[i];
    if (!n->alive) {
        return;
    }
    sim_trace(cl, "KILL %s%s", n->id, notify_down ? " (peers see connection refused)" : "");
    core_free(n->core);
    n->core = NULL;
    n->alive = false;
    n->paused = false;
    node_discard_pending(n);
    /* What survives a crash is the durable state only. */
    simlog_copy(&n->mem, &n->durable);
    n->mem_hs = n->durable_hs;
    n->incarnation++;
    n->kill_gen++;
    cl->kills++;
    if (notify_down) {
        for (unsigned j = 0; j < cl->p.nodes; j++) {
            if ((int)j != i && cl->nodes[j].alive && cluster_connected(cl, i, (int)j)) {
                /* TCP delivers what was already sent before the close is
                 * seen, so the notice comes after the link's last message. */
                int64_t at = cl->now + rng_between(&cl->rng, 1, 10);
                if (at <= cl->link_last[i][j]) {
                    at = cl->link_last[i][j] + 1;
                }
                struct sim_event *ev = cluster_event(cl, EV_PEER_DOWN, at);
                ev->from = i;
                ev->to = (int)j;
            }
        }
    }
    check_durable_majority(cl, 0);
}

void cluster_revive(struct cluster *cl, int i)
{
    struct sim_node *n = &cl->nodes[i];
    if (n->alive || n->retired) {
        return;
    }
    if (!n->listed) {
        cluster_set_listed(cl, i, true); /* discovery finds it again */
    }
    sim_trace(cl, "REVIVE %s (durable last %zu, epoch %" PRIu64 ")", n->id, n->durable.len,
              n->durable_hs.epoch);
    check_on_revive(cl, n);
    node_boot(cl, n);
    if (cl->failed) {
        return;
    }
    node_after_input(cl, n);
    for (unsigned j = 0; j < cl->p.nodes; j++) {
        if ((int)j != i && cluster_connected(cl, i, (int)j)) {
            peer_up(cl, (int)j, i);
            peer_up(cl, i, (int)j);
        }
    }
}

/* A brand-new replica: the next slot, an id never used, an empty disk. It
 * starts on a random side of the partition in force, meets who it can and
 * joins as a learner through the primary (core_peer_up). */
int cluster_add_node(struct cluster *cl)
{
    if (cl->p.nodes >= SIM_MAX_NODES) {
        return -1;
    }
    unsigned i = cl->p.nodes++;
    node_slot_init(cl, i);
    struct sim_node *n = &cl->nodes[i];
    n->group = cl->nodes[rng_between(&cl->rng, 0, i - 1)].group;
    for (unsigned j = 0; j < i; j++) {
        cl->link_last[i][j] = cl->link_last[j][i] = 0;
    }
    cl->ms.added_nodes++;
    sim_trace(cl, "ADD %s (new node, group %d)", n->id, n->group);
    cluster_revive(cl, (int)i);
    return (int)i;
}

/* Decommissioned: the process stops for good, and discovery stops listing it. */
void cluster_retire(struct cluster *cl, int i)
{
    struct sim_node *n = &cl->nodes[i];
    if (n->retired) {
        return;
    }
    sim_trace(cl, "RETIRE %s", n->id);
    cluster_kill(cl, i, true);
    n->retired = true;
    cl->ms.retired++;
    cluster_set_listed(cl, i, false);
}

void cluster_peer_up(struct cluster *cl, int a, int b)
{
    peer_up(cl, a, b);
}

void cluster_pause(struct cluster *cl, int i, int64_t until)
{
    struct sim_node *n = &cl->nodes[i];
    if (!n->alive) {
        return;
    }
    sim_trace(cl, "PAUSE %s until %" PRId64, n->id, until);
    n->paused = true;
    n->paused_until = until;
    n->pause_gen++;
    struct sim_event *ev = cluster_event(cl, EV_RESUME, until);
    ev->to = i;
    ev->gen = n->pause_gen;
}

void cluster_resume(struct cluster *cl, int i)
{
    struct sim_node *n = &cl->nodes[i];
    sim_trace(cl, "RESUME %s", n->id);
    n->paused = false;
}

void cluster_set_groups(struct cluster *cl, const int *groups)
{
    int before[SIM_MAX_NODES];
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        before[i] = cl->nodes[i].group;
        cl->nodes[i].group = groups[i];
    }
    cl->partition_gen++;
    if (cl->verbose) {
        char buf[4 * SIM_MAX_NODES + 1] = "";
        for (unsigned i = 0; i < cl->p.nodes; i++) {
            snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " %d", groups[i]);
        }
        sim_trace(cl, "groups%s", buf);
    }
    /* Reconnections identify themselves again. */
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        for (unsigned j = 0; j < cl->p.nodes; j++) {
            if (i != j && before[i] != before[j] && groups[i] == groups[j]) {
                peer_up(cl, (int)i, (int)j);
            }
        }
    }
}

void cluster_isolate(struct cluster *cl, int i)
{
    int g[SIM_MAX_NODES] = {0};
    g[i] = 1;
    sim_trace(cl, "PARTITION %s alone", cl->nodes[i].id);
    cluster_set_groups(cl, g);
}

void cluster_split(struct cluster *cl, unsigned mask)
{
    int g[SIM_MAX_NODES];
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        g[i] = (mask >> i) & 1;
    }
    sim_trace(cl, "PARTITION mask 0x%x", mask);
    cluster_set_groups(cl, g);
}

void cluster_heal(struct cluster *cl)
{
    int g[SIM_MAX_NODES] = {0};
    sim_trace(cl, "HEAL");
    cluster_set_groups(cl, g);
}

/* ========================================================================
 * Queries
 * ====================================================================== */

int cluster_primary(const struct cluster *cl)
{
    int best = -1;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        const struct sim_node *n = &cl->nodes[i];
        if (n->alive && !n->paused && core_role(n->core) == CORE_PRIMARY &&
            (best < 0 || core_epoch(n->core) > core_epoch(cl->nodes[best].core))) {
            best = (int)i;
        }
    }
    return best;
}

bool cluster_has_primary(struct cluster *cl)
{
    int p = cluster_primary(cl);
    if (p < 0) {
        return false;
    }
    /* A primary nobody else follows (a stale one) does not count. */
    uint64_t e = core_epoch(cl->nodes[p].core);
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        if (cl->nodes[i].alive && !cluster_out(cl, (int)i) && core_epoch(cl->nodes[i].core) > e) {
            return false;
        }
    }
    return true;
}

bool cluster_out(const struct cluster *cl, int i)
{
    return cl->nodes[i].retired || cl->removed_epoch[i] != 0;
}

/* Everyone alive, awake and agreeing on a fully committed log, clients
 * done, no membership change under way, and the configuration is every
 * node that is not out (retired or removed on request), all voters. */
bool cluster_converged(struct cluster *cl)
{
    if (!cluster_has_primary(cl) || !clients_idle(cl)) {
        return false;
    }
    const struct sim_node *pn = &cl->nodes[cluster_primary(cl)];
    uint64_t last = core_last_index(pn->core);
    if (pn->mem.len != cl->n_committed || core_commit_index(pn->core) != last) {
        return false;
    }
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        const struct sim_node *n = &cl->nodes[i];
        if (cluster_out(cl, (int)i)) {
            continue;
        }
        if (!n->alive || n->paused || n->flush_at != SIM_NEVER) {
            return false;
        }
        if (core_commit_index(n->core) != last || n->mem.len != last || n->durable_commit != last) {
            return false;
        }
        if (last && n->mem.prefix[last - 1] != pn->mem.prefix[last - 1]) {
            return false;
        }
    }
    struct core_config cfg;
    uint64_t cfg_index;
    node_config(pn, &cfg, &cfg_index);
    if (cfg_index > last || !config_is_voter(&cfg, pn->id)) {
        return false; /* a change, or a handover, is under way */
    }
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        const struct sim_node *n = &cl->nodes[i];
        if (cluster_out(cl, (int)i)) {
            if (config_is_member(&cfg, n->id)) {
                return false; /* stopped, but its removal did not stick yet */
            }
            continue;
        }
        /* Joiners are promoted once caught up (guarantee 4). */
        struct core_status st;
        core_get_status(n->core, cl->now, &st);
        if (!st.voter || !config_is_voter(&cfg, n->id)) {
            return false;
        }
    }
    return true;
}
