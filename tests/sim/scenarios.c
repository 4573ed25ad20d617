/*
 * tests/sim/scenarios.c — scripted cases with exact assertions on simulated
 * time, run before the random schedules: election, fast failover on a
 * refused connection, failover by timeout, check-quorum, a stale primary
 * coming back from a pause, retries applied once, catch-up after a crash,
 * a learner's join and promotion, and the paper's Figure 8 (no commit of an
 * older epoch by counting). Membership: removing a backup under load,
 * removing the primary (the handover is measured and reported), a 3 -> 5 ->
 * 3 -> 2 -> 3 voter cycle with writers, a removal racing a partition of the
 * primary, the automatic cleanup of a dead unlisted member, and the forced
 * recovery after a majority is lost for good.
 *
 * The network here is calm (1-5 ms, nothing lost) so the bounds can be tight:
 * every bound below is the protocol's own timing plus a few message delays.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define DELAY_MAX 5

/* Fast failovers that split the vote, reported with the summary. */
static unsigned split_failovers;

/* Handovers measured by remove_primary, reported with the summary. */
#define HANDOVERS_MAX 64
static struct {
    unsigned n;
    int64_t gap[HANDOVERS_MAX];   /* old primary steps down -> first commit of the new epoch */
    int64_t write[HANDOVERS_MAX]; /* removal asked -> next client write committed */
    unsigned extra_rounds;        /* handovers that took more than one election round */
} handovers;

/* remove_vs_partition outcomes: the removal survived the cut, or was lost. */
static unsigned removal_survived, removal_lost, removal_lost_after_ok, removal_stalled;

struct scenario {
    const char *name;
    void (*run)(struct cluster *cl);
    unsigned nodes;
    unsigned initial;        /* 0: all nodes bootstrap */
    size_t max_append_bytes; /* 0: default */
    unsigned clients;        /* 0: one */
    unsigned dead_member_timeout_ms;
    bool removals;  /* members get removed: the checker allows for it */
    bool known_bug; /* reproduces a known core bug: only when named, or with include_known */
    bool strict;    /* the checks only known core bugs fail are fatal (always with include_known) */
};

static struct cluster *setup(const struct scenario *sc, uint64_t seed, bool verbose)
{
    const char *name = sc->name;
    struct sim_params p = {
        .nodes = sc->nodes,
        .initial_size = sc->initial,
        .clients = sc->clients ? sc->clients : 1,
        .delay_min = 1,
        .delay_max = DELAY_MAX,
        .max_append_bytes = sc->max_append_bytes ? sc->max_append_bytes : 1 << 20,
        .client_timeout_ms = 10000,
        .think_max_ms = 0,
        .dead_member_timeout_ms = sc->dead_member_timeout_ms,
        .removals = sc->removals,
    };
    p.boot_all = strncmp(name, "bootstrap_", 10) == 0;
    p.no_discovery = strcmp(name, "bootstrap_disjoint") == 0;
    struct cluster *cl = cluster_new(&p, seed, verbose);
    cl->scenario = name;
    for (unsigned k = 0; k < p.clients; k++) {
        cl->clients[k].manual = true;
    }
    if (verbose) {
        printf("scenario %s (seed %" PRIu64 "): %u nodes\n", name, seed, sc->nodes);
    }
    cluster_start(cl);
    return cl;
}

#define EXPECT(cl, cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cl)->failed && !(cond)) {                                                            \
            sim_fail((cl), __VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

/* A new request (or, with retry, the same client id again) to a node. */
static uint64_t request(struct cluster *cl, int node, bool retry)
{
    struct sim_client *c = &cl->clients[0];
    if (!retry) {
        c->req++;
    }
    c->busy = true;
    return client_send(cl, 0, node);
}

static bool step_until_reply(struct cluster *cl, uint64_t token, int64_t max_ms)
{
    int64_t end = cl->now + max_ms;
    while (!cl->failed && cl->attempts[token - 1].status < 0 && cl->now <= end) {
        cluster_step(cl);
    }
    return !cl->failed && cl->attempts[token - 1].status >= 0;
}

static int elect(struct cluster *cl)
{
    bool ok = cluster_step_until(cl, cluster_has_primary, 5000);
    EXPECT(cl, ok, "no primary within 5 s");
    return cl->failed ? -1 : cluster_primary(cl);
}

/* A fresh cluster elects within one election timeout plus two round trips
 * (pre-vote, then vote). The first election needs every bootstrap member's
 * vote, so when two candidates split it, it takes one more timeout. */
static void sc_elect(struct cluster *cl)
{
    bool ok = cluster_step_until(cl, cluster_has_primary, 2000);
    EXPECT(cl, ok, "no primary within 2 s");
    /* Each round (a split one included) moves the epoch on by one. */
    uint64_t rounds = cl->failed ? 0 : core_epoch(cl->nodes[cluster_primary(cl)].core);
    int64_t bound = (int64_t)rounds * (600 + 4 * DELAY_MAX);
    EXPECT(cl, rounds <= 2, "%" PRIu64 " election rounds before the first primary", rounds);
    EXPECT(cl, cl->now <= bound,
           "first primary at %" PRId64 " ms after %" PRIu64 " round(s), expected by %" PRId64,
           cl->now, rounds, bound);
    if (cl->failed) {
        return;
    }
    int p = cluster_primary(cl);
    cluster_run_until(cl, cl->now + 100); /* two heartbeats */
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        EXPECT(cl, strcmp(core_primary(cl->nodes[i].core), cl->nodes[p].id) == 0 || (int)i == p,
               "%s follows '%s', not %s", cl->nodes[i].id, core_primary(cl->nodes[i].core),
               cl->nodes[p].id);
    }
}

/* Backups that see the primary's connection refused elect at once: well
 * under the 300 ms minimum election timeout. */
static void sc_failover_peer_down(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    uint64_t t = request(cl, p, false);
    EXPECT(cl, step_until_reply(cl, t, 1000) && cl->attempts[t - 1].status == CORE_REPLY_OK,
           "first request not acknowledged");
    cluster_run_until(cl, cl->now + 120);
    int64_t killed = cl->now;
    uint64_t started = cl->elections_started;
    cluster_kill(cl, p, true);
    bool ok = cluster_step_until(cl, cluster_has_primary, 2000);
    int64_t took = cl->now - killed;
    uint64_t candidates = cl->elections_started - started;
    EXPECT(cl, ok, "no new primary after killing %s", cl->nodes[p].id);
    /* peer_down after <= 10 ms, a spread of up to 2 heartbeats, two round
     * trips. When two backups campaign at once and split the vote, they
     * retry within 1 to 4 heartbeats (the primary is known gone), so even
     * two splits in a row stay far under the 300 ms election timeout. */
    int64_t bound =
        candidates <= 1 ? 10 + 100 + 4 * DELAY_MAX : 10 + 100 + 3 * (200 + 4 * DELAY_MAX);
    EXPECT(cl, took <= bound,
           "failover took %" PRId64 " ms with %" PRIu64 " candidate(s), expected at most %" PRId64,
           took, candidates, bound);
    if (candidates > 1) {
        split_failovers++;
    }
    if (cl->verbose) {
        printf("failover with peer_down took %" PRId64 " ms, %" PRIu64 " candidate(s)\n", took,
               candidates);
    }
}

/* Without the refused connection the backups must wait out the timeout
 * (and the primary's lease): failover takes at least election_min minus
 * one heartbeat, at most election_max plus the rounds. */
static void sc_failover_timeout(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    cluster_run_until(cl, cl->now + 230);
    int64_t killed = cl->now;
    cluster_kill(cl, p, false);
    bool ok = cluster_step_until(cl, cluster_has_primary, 3000);
    int64_t took = cl->now - killed;
    EXPECT(cl, ok, "no new primary after killing %s", cl->nodes[p].id);
    EXPECT(cl, took >= 300 - 50 && took <= 600 + 4 * DELAY_MAX,
           "failover by timeout took %" PRId64 " ms, expected 250..620", took);
}

/* A primary cut off from the majority stops being primary within one
 * election timeout (guarantee 1, check-quorum), and the majority elects. */
static void sc_check_quorum(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    cluster_run_until(cl, cl->now + 200);
    int64_t cut = cl->now;
    cluster_isolate(cl, p);
    while (!cl->failed && cl->now < cut + 600 && core_role(cl->nodes[p].core) == CORE_PRIMARY) {
        cluster_step(cl);
    }
    EXPECT(cl, core_role(cl->nodes[p].core) != CORE_PRIMARY,
           "isolated primary %s still primary %" PRId64 " ms after the cut", cl->nodes[p].id,
           cl->now - cut);
    bool ok = cluster_step_until(cl, cluster_has_primary, 2000);
    EXPECT(cl, ok && cluster_primary(cl) != p, "the majority side did not elect");
    uint64_t t = request(cl, p, false);
    EXPECT(cl, step_until_reply(cl, t, 100) && cl->attempts[t - 1].status != CORE_REPLY_OK,
           "the cut-off replica accepted a write");
}

/* A primary paused (SIGSTOP) with a request in hand resumes after the
 * others moved on: it steps down, and the request is answered UNKNOWN or
 * NOT_PRIMARY, never OK; the client's retry then commits it exactly once. */
static void sc_stale_primary(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    uint64_t t0 = request(cl, p, false);
    EXPECT(cl, step_until_reply(cl, t0, 1000) && cl->attempts[t0 - 1].status == CORE_REPLY_OK,
           "first request not acknowledged");
    cluster_isolate(cl, p); /* so the request below cannot replicate */
    uint64_t last = core_last_index(cl->nodes[p].core);
    uint64_t t1 = request(cl, p, false);
    while (!cl->failed && core_last_index(cl->nodes[p].core) == last) {
        cluster_step(cl);
    }
    cluster_pause(cl, p, cl->now + 5000);
    cluster_heal(cl);
    bool ok = cluster_step_until(cl, cluster_has_primary, 3000);
    int q = cluster_primary(cl);
    EXPECT(cl, ok && q != p, "no new primary while %s is paused", cl->nodes[p].id);
    cluster_run_until(cl, cl->nodes[p].paused_until + 1);
    int64_t resumed = cl->now;
    while (!cl->failed && cl->now < resumed + 600 && core_role(cl->nodes[p].core) == CORE_PRIMARY) {
        cluster_step(cl);
    }
    EXPECT(cl, core_role(cl->nodes[p].core) != CORE_PRIMARY, "stale primary %s did not step down",
           cl->nodes[p].id);
    EXPECT(cl, step_until_reply(cl, t1, 1000), "stale primary never answered its request");
    int st = cl->attempts[t1 - 1].status;
    EXPECT(cl, st == CORE_REPLY_UNKNOWN || st == CORE_REPLY_NOT_PRIMARY,
           "stale primary answered %d, expected UNKNOWN or NOT_PRIMARY", st);
    /* Retry with the same id at the new primary. */
    q = cluster_primary(cl);
    uint64_t t2 = request(cl, q < 0 ? 0 : q, true);
    EXPECT(cl, step_until_reply(cl, t2, 1000) && cl->attempts[t2 - 1].status == CORE_REPLY_OK,
           "retry at the new primary not acknowledged");
    cluster_run_until(cl, cl->now + 300);
    EXPECT(cl, cluster_converged(cl), "logs did not converge after the stale primary returned");
}

/* The reply is lost; retrying the same id, first at the same primary and
 * then at its successor, answers OK with the original index. */
static void sc_retry_dedup(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    cl->drop_client_replies = true;
    uint64_t t0 = request(cl, p, false);
    cluster_run_until(cl, cl->now + 200);
    EXPECT(cl, cl->attempts[t0 - 1].status == CORE_REPLY_OK, "request did not commit");
    uint64_t index = cl->attempts[t0 - 1].index;
    cl->drop_client_replies = false;
    uint64_t t1 = request(cl, p, true);
    EXPECT(cl,
           step_until_reply(cl, t1, 1000) && cl->attempts[t1 - 1].status == CORE_REPLY_OK &&
               cl->attempts[t1 - 1].index == index,
           "retry at the same primary: status %d index %" PRIu64 ", expected OK at %" PRIu64,
           cl->attempts[t1 - 1].status, cl->attempts[t1 - 1].index, index);
    cluster_run_until(cl, cl->now + 100);
    cluster_kill(cl, p, true);
    bool ok = cluster_step_until(cl, cluster_has_primary, 3000);
    EXPECT(cl, ok, "no new primary");
    int q = cluster_primary(cl);
    uint64_t t2 = request(cl, q < 0 ? 0 : q, true);
    EXPECT(cl,
           step_until_reply(cl, t2, 1000) && cl->attempts[t2 - 1].status == CORE_REPLY_OK &&
               cl->attempts[t2 - 1].index == index,
           "retry at the new primary: status %d index %" PRIu64 ", expected OK at %" PRIu64,
           cl->attempts[t2 - 1].status, cl->attempts[t2 - 1].index, index);
}

/* A backup that was down while the log grew catches up after it returns,
 * with appends small enough to need many rounds. */
static void sc_catch_up(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    int b = (p + 1) % (int)cl->p.nodes;
    cluster_kill(cl, b, true);
    for (int i = 0; i < 30 && !cl->failed; i++) {
        uint64_t t = request(cl, p, false);
        EXPECT(cl, step_until_reply(cl, t, 1000) && cl->attempts[t - 1].status == CORE_REPLY_OK,
               "request %d not acknowledged with one backup down", i);
    }
    cluster_run_until(cl, cl->now + 100);
    int64_t back = cl->now;
    cluster_revive(cl, b);
    bool ok = cluster_step_until(cl, cluster_converged, 2000);
    EXPECT(cl, ok, "%s did not catch up within 2 s", cl->nodes[b].id);
    EXPECT(cl, core_role(cl->nodes[p].core) == CORE_PRIMARY,
           "the returning backup disturbed the primary");
    if (cl->verbose) {
        printf("catch-up took %" PRId64 " ms\n", cl->now - back);
    }
}

static bool in_group(struct cluster *cl, int i, const int *g, int which)
{
    return cl->nodes[i].alive && g[i] == which;
}

static int primary_in(struct cluster *cl, const int *g, int which, uint64_t above)
{
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        struct sim_node *n = &cl->nodes[i];
        if (in_group(cl, (int)i, g, which) && core_role(n->core) == CORE_PRIMARY &&
            core_epoch(n->core) > above) {
            return (int)i;
        }
    }
    return -1;
}

static int step_until_primary_in(struct cluster *cl, const int *g, int which, uint64_t above,
                                 int64_t max_ms)
{
    int64_t end = cl->now + max_ms;
    int p;
    while ((p = primary_in(cl, g, which, above)) < 0 && !cl->failed && cl->now <= end) {
        cluster_step(cl);
    }
    return p;
}

/* Loses Appends to filter_node that carry entries of epoch filter_arg or
 * later. */
static bool drop_new_epoch_entries(struct cluster *cl, const struct sim_event *ev)
{
    if (ev->msg.type != CORE_MSG_APPEND || ev->to != cl->filter_node) {
        return false;
    }
    for (size_t i = 0; i < ev->msg.append.n_entries; i++) {
        if (ev->msg.append.entries[i].epoch >= cl->filter_arg) {
            return true;
        }
    }
    return false;
}

/* Figure 8 of the Raft paper (dissertation 3.6.2): an entry from an older
 * epoch that a new primary has copied to a majority is not committed by
 * counting replicas, because a server that never saw it can still be
 * elected and overwrite it. Five nodes, one entry per Append:
 *   1. P (epoch e) appends X at L+1, copies it to B only, dies.
 *   2. Q wins epoch e+1 among the other three, appends its no-op at L+1,
 *      and dies before sending it.
 *   3. P returns; P (or B) wins among {P, B, R} and copies X to R, but
 *      not its own no-op. X is now on a majority (P, B, R) but must NOT
 *      count as committed. That primary dies.
 *   4. Q returns and wins with the votes of R and the fifth node (its no-op
 *      is of a newer epoch than X), overwriting X.
 * A core that committed X in step 3 fails invariant 2 in step 4. */
static void sc_figure8(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    uint64_t t = request(cl, p, false);
    EXPECT(cl, step_until_reply(cl, t, 1000) && cl->attempts[t - 1].status == CORE_REPLY_OK,
           "first request not acknowledged");
    cluster_run_until(cl, cl->now + 100);
    uint64_t e = core_epoch(cl->nodes[p].core);
    uint64_t L = core_last_index(cl->nodes[p].core);
    int others[4], n = 0;
    for (int i = 0; i < 5; i++) {
        if (i != p) {
            others[n++] = i;
        }
    }
    int b = others[0], c = others[1], d = others[2];

    /* 1. */
    int g1[5];
    for (int i = 0; i < 5; i++) {
        g1[i] = i == p || i == b ? 1 : 0;
    }
    cluster_set_groups(cl, g1);
    request(cl, p, false);
    while (!cl->failed && core_last_index(cl->nodes[b].core) < L + 1 && cl->now < 10000) {
        cluster_step(cl);
    }
    EXPECT(cl, core_last_index(cl->nodes[b].core) == L + 1, "X did not reach %s", cl->nodes[b].id);
    cluster_kill(cl, p, false);

    /* 2. */
    int q = step_until_primary_in(cl, g1, 0, e, 3000);
    EXPECT(cl, q >= 0, "no primary among the three");
    if (cl->failed) {
        return;
    }
    int g2[5];
    for (int i = 0; i < 5; i++) {
        g2[i] = i == q ? 2 : g1[i];
    }
    cluster_set_groups(cl, g2); /* its no-op is still in flight: lost */
    cluster_kill(cl, q, false);
    uint64_t eq = cl->nodes[q].durable_hs.epoch;
    EXPECT(cl, cl->nodes[q].durable.len == L + 1 && cl->nodes[q].durable.at[L]->e.epoch == eq,
           "%s did not persist its no-op at %" PRIu64, cl->nodes[q].id, L + 1);

    /* 3. The three that can meet: P, B and one of Q's voters. */
    int r = c == q ? d : c; /* a voter of Q's that is not Q */
    int g3[5];
    for (int i = 0; i < 5; i++) {
        g3[i] = i == p || i == b || i == r ? 0 : (i == q ? 2 : 1);
    }
    cl->filter = drop_new_epoch_entries;
    cl->filter_arg = eq + 1;
    cl->filter_node = r;
    cluster_set_groups(cl, g3);
    cluster_revive(cl, p);
    int p2 = step_until_primary_in(cl, g3, 0, eq, 5000);
    EXPECT(cl, p2 >= 0, "neither %s nor %s was elected", cl->nodes[p].id, cl->nodes[b].id);
    if (cl->failed) {
        return;
    }
    while (!cl->failed && core_last_index(cl->nodes[r].core) < L + 1 && cl->now < 30000) {
        cluster_step(cl);
    }
    EXPECT(cl, core_last_index(cl->nodes[r].core) == L + 1, "X did not reach %s", cl->nodes[r].id);
    /* Give the ack time to arrive, but stop the moment a (wrong) commit
     * happens, before a heartbeat can spread it: the paper's S1 crash. */
    int64_t acked = cl->now + 2 * DELAY_MAX + 1;
    while (!cl->failed && cl->now < acked && core_commit_index(cl->nodes[p2].core) == L) {
        cluster_step(cl);
    }
    int g4[5];
    for (int i = 0; i < 5; i++) {
        g4[i] = i == p2 ? 3 : g3[i];
    }
    cluster_set_groups(cl, g4); /* whatever it just sent is lost */
    cluster_kill(cl, p2, false);

    /* 4. Q wins with the votes of R (which holds X, from an older epoch
     * than Q's no-op) and of the fifth node. */
    cl->filter = NULL;
    int g5[5];
    for (int i = 0; i < 5; i++) {
        g5[i] = i == q || i == r || (i != p && i != b) ? 0 : 1;
    }
    cluster_set_groups(cl, g5);
    cluster_revive(cl, q);
    int q2 = step_until_primary_in(cl, g5, 0, eq, 5000);
    EXPECT(cl, q2 == q, "%s was not re-elected", cl->nodes[q].id);
    cluster_run_until(cl, cl->now + 300);

    /* Then everything heals and agrees. */
    cluster_heal(cl);
    for (int i = 0; i < 5; i++) {
        cluster_revive(cl, i);
    }
    cl->clients[0].busy = false; /* X was overwritten; nobody was told OK */
    EXPECT(cl, cluster_step_until(cl, cluster_converged, 5000), "no convergence after healing");
}

/* A replica that was not in the bootstrap configuration joins as a learner,
 * catches up, and only then is promoted to voter (guarantee 4); until then
 * the original three commit on their own. */
static void sc_join(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    for (int i = 0; i < 20 && !cl->failed; i++) {
        uint64_t t = request(cl, p, false);
        EXPECT(cl, step_until_reply(cl, t, 1000) && cl->attempts[t - 1].status == CORE_REPLY_OK,
               "request %d not acknowledged", i);
    }
    int j = 3;
    int64_t joined = cl->now;
    cluster_revive(cl, j); /* boots r4 for the first time */
    /* Until the log reaches it, r4 judges by the bootstrap list it settled
     * on from the first replicas it met; only its view once it holds the
     * cluster's configuration counts. */
    bool seen_learner = false, promoted = false;
    uint64_t promoted_at = 0;
    while (!cl->failed && cl->now < joined + 2000 && !promoted) {
        cluster_step(cl);
        struct core_status st;
        core_get_status(cl->nodes[j].core, cl->now, &st);
        if (st.last_index == 0) {
            continue;
        }
        seen_learner |= core_role(cl->nodes[j].core) == CORE_LEARNER;
        promoted = st.voter && seen_learner;
        promoted_at = st.last_index;
    }
    EXPECT(cl, seen_learner, "%s was never a learner", cl->nodes[j].id);
    EXPECT(cl, promoted, "%s not promoted within 2 s", cl->nodes[j].id);
    EXPECT(cl, promoted_at >= 21, "%s was promoted before catching up (last %" PRIu64 ")",
           cl->nodes[j].id, promoted_at);
    EXPECT(cl, core_role(cl->nodes[p].core) == CORE_PRIMARY, "the join disturbed the primary");
    if (cl->verbose) {
        printf("join to promotion took %" PRId64 " ms\n", cl->now - joined);
    }
    EXPECT(cl, cluster_step_until(cl, cluster_converged, 2000), "no convergence after the join");
}

/* Five (or six) replicas start together with --initial-size 3 and discover
 * each other in a random order (connections complete one by one). A primary
 * must still emerge, and only one cluster: docs/design.md, "The protocol",
 * Membership: "the first configuration is the same on every replica". */
static void sc_bootstrap_race(struct cluster *cl)
{
    bool ok = cluster_step_until(cl, cluster_has_primary, 10000);
    char lists[SIM_MAX_NODES * (CORE_ID_MAX + 16)] = "";
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        const struct core_hard_state *hs = &cl->nodes[i].mem_hs;
        size_t used = strlen(lists);
        /* Ids are short ("r1"); the precision only tells the compiler so. */
        snprintf(lists + used, sizeof(lists) - used, " %.8s:{%.8s,%.8s,%.8s}", cl->nodes[i].id,
                 hs->bootstrap[0], hs->bootstrap[1], hs->bootstrap[2]);
    }
    EXPECT(cl, ok, "no primary within 10 s; bootstrap lists%s", lists);
    /* Then clients write for a while: with two disjoint bootstrap sets
     * there would be two clusters, caught by the invariants. */
    if (!cl->failed) {
        cl->clients[0].manual = false;
        cl->clients[0].next_action = cl->now;
        cluster_run_until(cl, cl->now + 3000);
    }
}

/* Six replicas, --initial-size 3, and each half meets itself first: the
 * halves settle on disjoint bootstrap lists. There must still be one
 * cluster, not two (invariants 1 and 2 watch). */
static void sc_bootstrap_disjoint(struct cluster *cl)
{
    for (int half = 0; half < 2; half++) {
        for (int a = 3 * half; a < 3 * half + 3; a++) {
            for (int b = 3 * half; b < 3 * half + 3; b++) {
                if (a != b) {
                    cluster_peer_up(cl, a, b);
                }
            }
        }
    }
    for (int a = 0; a < 6; a++) {
        for (int b = 0; b < 6; b++) {
            if (a / 3 != b / 3) {
                cluster_peer_up(cl, a, b);
            }
        }
    }
    cl->clients[0].manual = false;
    cl->clients[0].next_action = cl->now;
    cluster_run_until(cl, cl->now + 5000);
    EXPECT(cl, cluster_has_primary(cl), "no primary after 5 s");
}

/* The primary's Appends leave before its own fsync, and here its disk is
 * far slower than its backup's. With the third voter down, the backup's
 * ack alone is not a majority on disk: the primary must neither answer
 * the client nor move the commit index (which its next Append would carry
 * to the backup) until its own fsync returns. Killed before that, the
 * entry is legitimately lost, and the checker sees nothing committed go. */
static void sc_slow_primary_disk(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    int b1 = (p + 1) % 3, b2 = (p + 2) % 3;
    cluster_run_until(cl, cl->now + 100);
    cluster_kill(cl, b2, false);
    struct sim_node *primary = &cl->nodes[p];
    primary->fsync_ms = 150;
    uint64_t before = core_commit_index(primary->core);
    uint64_t t = request(cl, p, false);
    cluster_run_until(cl, cl->now + 100); /* the backup acked long ago */
    uint64_t entry = core_last_index(primary->core);
    EXPECT(cl, entry > before && core_last_index(cl->nodes[b1].core) >= entry,
           "the entry did not reach the fast backup");
    EXPECT(cl, core_commit_index(primary->core) == before,
           "the primary committed %" PRIu64 " before its own fsync (commit was %" PRIu64 ")",
           core_commit_index(primary->core), before);
    EXPECT(cl, core_commit_index(cl->nodes[b1].core) <= before,
           "the backup learned commit %" PRIu64 " before the primary's fsync",
           core_commit_index(cl->nodes[b1].core));
    EXPECT(cl, cl->attempts[t - 1].status < 0, "answered before a majority was durable");
    if (cl->seed % 2 == 0) {
        /* The fsync returns: now a majority holds it, and the client hears. */
        EXPECT(cl, step_until_reply(cl, t, 1000) && cl->attempts[t - 1].status == CORE_REPLY_OK,
               "no OK after the primary's fsync");
        return;
    }
    cluster_kill(cl, p, true); /* before its fsync: the entry may go */
    primary->fsync_ms = 0;
    cluster_revive(cl, b2);
    cluster_revive(cl, p);
    bool ok = cluster_step_until(cl, cluster_has_primary, 5000);
    EXPECT(cl, ok, "no primary after the crash");
    cluster_run_until(cl, cl->now + 500);
}

/* ========================================================================
 * Membership
 * ====================================================================== */

/* Every client writes on its own (retrying, following hints) until stopped. */
static void start_writers(struct cluster *cl)
{
    for (unsigned k = 0; k < cl->p.clients; k++) {
        struct sim_client *c = &cl->clients[k];
        c->manual = false;
        c->stopped = false;
        if (!c->busy) {
            c->next_action = cl->now;
        }
    }
}

static void stop_writers(struct cluster *cl)
{
    for (unsigned k = 0; k < cl->p.clients; k++) {
        cl->clients[k].stopped = true;
    }
}

/* Run for ms; true if some write was acknowledged meanwhile. */
static bool writes_flow(struct cluster *cl, int64_t ms)
{
    uint64_t before = cl->acked;
    cluster_run_until(cl, cl->now + ms);
    return cl->acked > before;
}

static int step_until_answered(struct cluster *cl, uint64_t token, int64_t max_ms)
{
    int64_t end = cl->now + max_ms;
    while (!cl->failed && admin_get(cl, token)->status == -1 && cl->now <= end) {
        cluster_step(cl);
    }
    return admin_get(cl, token)->status;
}

/* The operator removes `target` through whoever is primary, retrying BUSY,
 * NOT_PRIMARY and refusals, then waits for the removal to commit. */
static bool remove_and_commit(struct cluster *cl, int target, int64_t max_ms)
{
    int64_t end = cl->now + max_ms;
    int st = -1;
    while (!cl->failed && st != CORE_REPLY_OK && cl->removed_epoch[target] == 0 && cl->now <= end) {
        int p = cluster_primary(cl);
        if (p < 0) {
            cluster_run_until(cl, cl->now + 20);
            continue;
        }
        st = step_until_answered(cl, admin_remove(cl, p, target, AFTER_NOTHING, 1), end - cl->now);
        EXPECT(cl, st != CORE_REPLY_NOT_FOUND, "removal of member %s answered NOT_FOUND",
               cl->nodes[target].id);
        if (st != CORE_REPLY_OK) {
            cluster_run_until(cl, cl->now + 50);
        }
    }
    while (!cl->failed && cl->removed_epoch[target] == 0 && cl->now <= end) {
        cluster_step(cl);
    }
    return cl->removed_epoch[target] != 0;
}

static bool is_voter_now(struct cluster *cl, int j)
{
    return config_is_voter(&cl->cfg_last, cl->nodes[j].id);
}

/* A brand-new node joins; true once a committed configuration has it as a voter. */
static int add_and_promote(struct cluster *cl, int64_t max_ms)
{
    int j = cluster_add_node(cl);
    EXPECT(cl, j >= 0, "no node slot left");
    if (j < 0) {
        return -1;
    }
    int64_t end = cl->now + max_ms;
    while (!cl->failed && !is_voter_now(cl, j) && cl->now <= end) {
        cluster_step(cl);
    }
    EXPECT(cl, is_voter_now(cl, j), "new node %s not a voter within %" PRId64 " ms",
           cl->nodes[j].id, max_ms);
    return j;
}

static bool converged_after(struct cluster *cl, int64_t max_ms)
{
    stop_writers(cl);
    return cluster_step_until(cl, cluster_converged, max_ms);
}

/* A backup is removed while clients write: the change commits within a
 * few round trips, the primary keeps its epoch, writes keep committing, and
 * the removed backup (connected) receives its removal and knows it. */
static void sc_remove_backup(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged before the removal");
    uint64_t epoch = core_epoch(cl->nodes[p].core);
    unsigned voters = config_voters(&cl->cfg_last);
    int b = (p + 1 + (int)(cl->seed % (cl->p.nodes - 1))) % (int)cl->p.nodes;
    int64_t asked = cl->now;
    uint64_t t = admin_remove(cl, p, b, AFTER_NOTHING, 1);
    EXPECT(cl, step_until_answered(cl, t, 1000) == CORE_REPLY_OK, "removal not answered OK: %d",
           admin_get(cl, t)->status);
    while (!cl->failed && cl->removed_epoch[b] == 0 && cl->now < asked + 1000) {
        cluster_step(cl);
    }
    int64_t took = cl->now - asked;
    EXPECT(cl, cl->removed_epoch[b] != 0, "removal of %s not committed within 1 s",
           cl->nodes[b].id);
    /* A change commits like a write: a round trip and an fsync or two. */
    EXPECT(cl, took <= 50 + 6 * DELAY_MAX, "removal took %" PRId64 " ms to commit", took);
    EXPECT(cl, config_voters(&cl->cfg_last) == voters - 1, "%u voters after the removal, not %u",
           config_voters(&cl->cfg_last), voters - 1);
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged after the removal");
    EXPECT(cl,
           core_role(cl->nodes[p].core) == CORE_PRIMARY && core_epoch(cl->nodes[p].core) == epoch,
           "the removal of a backup disturbed the primary");
    while (!cl->failed && core_role(cl->nodes[b].core) != CORE_REMOVED && cl->now < asked + 2000) {
        cluster_step(cl);
    }
    EXPECT(cl, core_role(cl->nodes[b].core) == CORE_REMOVED,
           "%s does not know it was removed (role %s)", cl->nodes[b].id,
           role_name((enum role)core_role(cl->nodes[b].core)));
    EXPECT(cl, converged_after(cl, 3000), "no convergence after the removal");
    if (cl->verbose) {
        printf("removal of a backup committed in %" PRId64 " ms\n", took);
    }
}

static int64_t median(int64_t *v, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        for (unsigned k = i; k > 0 && v[k - 1] > v[k]; k--) {
            int64_t x = v[k];
            v[k] = v[k - 1];
            v[k - 1] = x;
        }
    }
    return n ? v[n / 2] : 0;
}

/* The primary removes itself while clients write: it leads until the
 * removal commits, then hands over with TimeoutNow. Measured (reported
 * with the summary, not asserted): from its stepping down to the first
 * commit of the new epoch, and from the request to the next client write
 * committed; typically well under one election timeout (300 ms). */
static void sc_remove_primary(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged before the removal");
    struct sim_node *old = &cl->nodes[p];
    uint64_t e0 = core_epoch(old->core);
    size_t from = cl->n_committed;
    int64_t asked = cl->now;
    uint64_t t = admin_remove(cl, p, p, AFTER_NOTHING, 1);
    EXPECT(cl, step_until_answered(cl, t, 1000) == CORE_REPLY_OK,
           "self-removal not answered OK: %d", admin_get(cl, t)->status);
    while (!cl->failed && core_role(old->core) == CORE_PRIMARY && cl->now < asked + 2000) {
        cluster_step(cl);
    }
    EXPECT(cl, core_role(old->core) != CORE_PRIMARY, "%s still primary 2 s after removing itself",
           old->id);
    EXPECT(cl, cl->removed_epoch[p] != 0, "%s stepped down before its removal committed", old->id);
    int64_t down = cl->now;
    int64_t first_commit = -1, first_write = -1;
    while (!cl->failed && first_write < 0 && cl->now < down + 3000) {
        cluster_step(cl);
        for (; from < cl->n_committed; from++) {
            const struct core_entry *e = &cl->committed[from]->e;
            if (e->epoch > e0 && first_commit < 0) {
                first_commit = cl->now;
            }
            if (e->epoch > e0 && e->type == CORE_ENTRY_DATA && first_write < 0) {
                first_write = cl->now;
            }
        }
    }
    EXPECT(cl, first_write >= 0, "no write committed within 3 s of the handover");
    int q = cluster_primary(cl);
    EXPECT(cl, q >= 0 && q != p, "no new primary after the handover");
    EXPECT(cl, core_role(old->core) == CORE_REMOVED, "%s is %s after removing itself", old->id,
           role_name((enum role)core_role(old->core)));
    if (cl->failed) {
        return;
    }
    if (handovers.n < HANDOVERS_MAX) {
        handovers.gap[handovers.n] = first_commit - down;
        handovers.write[handovers.n] = first_write - asked;
        handovers.n++;
    }
    handovers.extra_rounds += core_epoch(cl->nodes[q].core) > e0 + 1;
    if (cl->verbose) {
        printf("handover: stepped down %" PRId64
               " ms after the request, new epoch committed %" PRId64
               " ms later, next write %" PRId64 " ms after the request\n",
               down - asked, first_commit - down, first_write - asked);
    }
    EXPECT(cl, converged_after(cl, 3000), "no convergence after the handover");
}

/* 3 -> 5 -> 3 -> 2 -> 3 voters while clients write; every stage commits
 * writes, and the removals take backups or (odd seeds) the primary. */
static void sc_membership_cycle(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged at 3 voters");
    int a = add_and_promote(cl, 5000);
    add_and_promote(cl, 5000);
    EXPECT(cl, config_voters(&cl->cfg_last) == 5, "%u voters, not 5", config_voters(&cl->cfg_last));
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged at 5 voters");
    /* Down to 3: one of the new ones and one of the first three. */
    int first = (int)(cl->seed % 3);
    EXPECT(cl, a >= 0 && remove_and_commit(cl, a, 3000), "removing %s failed", cl->nodes[a].id);
    EXPECT(cl, remove_and_commit(cl, first, 3000), "removing %s failed", cl->nodes[first].id);
    EXPECT(cl, config_voters(&cl->cfg_last) == 3, "%u voters, not 3", config_voters(&cl->cfg_last));
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged at 3 voters again");
    /* Down to 2, the primary itself on odd seeds. */
    int cur = cluster_primary(cl);
    int victim = -1;
    for (unsigned i = 0; i < cl->p.nodes && victim < 0; i++) {
        if (is_voter_now(cl, (int)i) && (cl->seed % 2 ? (int)i == cur : (int)i != cur)) {
            victim = (int)i;
        }
    }
    EXPECT(cl, victim >= 0 && remove_and_commit(cl, victim, 3000), "removing a third voter failed");
    EXPECT(cl, config_voters(&cl->cfg_last) == 2, "%u voters, not 2", config_voters(&cl->cfg_last));
    EXPECT(cl, writes_flow(cl, 1000), "no write acknowledged at 2 voters");
    add_and_promote(cl, 5000);
    EXPECT(cl, config_voters(&cl->cfg_last) == 3, "%u voters, not 3 at the end",
           config_voters(&cl->cfg_last));
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged at the end");
    EXPECT(cl, converged_after(cl, 5000), "no convergence after the cycle");
}

/* Could node i win an election now, away from the cut-off group? */
static bool could_win(struct cluster *cl, int i, int cut_group)
{
    const struct sim_node *n = &cl->nodes[i];
    if (!n->alive || n->group == cut_group) {
        return false;
    }
    struct core_config cfg;
    uint64_t index;
    node_config(n, &cfg, &index);
    if (!config_is_voter(&cfg, n->id)) {
        return false;
    }
    uint64_t li = core_last_index(n->core);
    uint64_t le = li ? n->mem.at[li - 1]->e.epoch : 0;
    unsigned ok = 0;
    for (unsigned k = 0; k < cfg.n; k++) {
        int j = cluster_node_index(cl, cfg.members[k].id);
        if (!cfg.members[k].voter || j < 0 || !cl->nodes[j].alive ||
            cl->nodes[j].group != n->group) {
            continue;
        }
        uint64_t lj = core_last_index(cl->nodes[j].core);
        uint64_t ej = lj ? cl->nodes[j].mem.at[lj - 1]->e.epoch : 0;
        ok += le > ej || (le == ej && li >= lj);
    }
    return ok >= config_voters(&cfg) / 2 + 1;
}

/* The primary is cut off moments after it was asked to remove a backup
 * (0 to 20 ms, by seed): the change may commit before the cut, or stay on
 * the cut-off primary only and be lost when a new primary takes over. Both
 * are fine; the configuration must agree everywhere in the end, and the
 * removal either committed or the backup is still a voter. */
static void sc_remove_vs_partition(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged before the removal");
    int b = (p + 1 + (int)(cl->seed % (cl->p.nodes - 1))) % (int)cl->p.nodes;
    uint64_t t = admin_remove(cl, p, b, AFTER_NOTHING, 1);
    cluster_run_until(cl, cl->now + 1 + (int64_t)(cl->seed % 5) * 5);
    cluster_isolate(cl, p);
    /* Whether the rest can elect depends on where the change got: a node
     * can win if it is a voter of its latest configuration and a majority of
     * that configuration's voters are on its side with logs no newer than
     * its own. With three nodes, a removal that reached the two others
     * leaves {primary, other}: nobody can win until the cut heals. */
    int64_t cut = cl->now;
    cluster_run_until(cl, cut + 20); /* what was on the wire before the cut is in */
    bool can_win = false;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        can_win |= (int)i != p && could_win(cl, (int)i, cl->nodes[p].group);
    }
    bool elected = false;
    while (!cl->failed && !elected && cl->now < cut + 3000) {
        cluster_step(cl);
        int q = cluster_primary(cl);
        elected = q >= 0 && q != p && cl->nodes[q].group != cl->nodes[p].group;
    }
    EXPECT(cl, elected == can_win, "the majority side %s within 3 s, though it %s",
           elected ? "elected" : "did not elect", can_win ? "could" : "could not");
    if (elected) {
        EXPECT(cl, writes_flow(cl, 1000), "no write acknowledged on the majority side");
    } else {
        removal_stalled++;
    }
    cluster_heal(cl);
    EXPECT(cl, converged_after(cl, 5000), "no convergence after healing");
    if (cl->failed) {
        return;
    }
    int q = cluster_primary(cl);
    struct core_config cfg;
    uint64_t index;
    node_config(&cl->nodes[q], &cfg, &index);
    bool removed = cl->removed_epoch[b] != 0;
    EXPECT(cl, removed != config_is_member(&cfg, cl->nodes[b].id),
           "%s: removal committed %d but member %d", cl->nodes[b].id, removed,
           config_is_member(&cfg, cl->nodes[b].id));
    if (removed) {
        removal_survived++;
    } else {
        removal_lost++;
        removal_lost_after_ok += admin_get(cl, t)->status == CORE_REPLY_OK;
    }
}

/* Automatic cleanup: a backup dies and discovery stops listing it; the
 * primary removes it once it has been unheard for the dead-member timeout
 * (2 s), not before. Another dead backup that is still listed (a restart)
 * stays. The removed one comes back later, is listed again and joins anew
 * (it is not on the removed list): learner, then voter. */
static void sc_dead_member_cleanup(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged at first");
    const int64_t timeout = cl->p.dead_member_timeout_ms;
    int b = (p + 1) % (int)cl->p.nodes;
    int c = cl->p.nodes >= 5 ? (p + 2) % (int)cl->p.nodes : -1;
    unsigned voters = config_voters(&cl->cfg_last);
    cluster_run_until(cl, cl->now + 60); /* so b was heard just now */
    int64_t killed = cl->now;
    /* Even seeds: its connection is refused at once. Odd seeds: it dies
     * silently, and the transports notice the dead connection only after
     * `notice` ms; the cleanup needs that too (the member must not be up). */
    bool silent = cl->seed % 2 == 1;
    const int64_t notice = silent ? 500 + (int64_t)(cl->seed % 7) * 500 : 0;
    cluster_kill(cl, b, !silent);
    cluster_set_listed(cl, b, false);
    for (unsigned j = 0; silent && j < cl->p.nodes; j++) {
        if ((int)j != b) {
            struct sim_event *ev = cluster_event(cl, EV_PEER_DOWN, killed + notice);
            ev->from = b;
            ev->to = (int)j;
        }
    }
    if (c >= 0) {
        cluster_kill(cl, c, true); /* still listed: restarting */
    }
    const int64_t due = timeout > notice ? timeout : notice;
    while (!cl->failed && is_voter_now(cl, b) && cl->now < killed + due + 1000) {
        cluster_step(cl);
    }
    int64_t took = cl->now - killed;
    EXPECT(cl, !is_voter_now(cl, b), "%s still a member %" PRId64 " ms after it died unlisted",
           cl->nodes[b].id, took);
    /* Unheard since its last message (at most a heartbeat before the
     * kill) for the timeout, and known down: found at the next heartbeat,
     * committed a round trip later. */
    EXPECT(cl, took >= timeout - 60 && took <= due + 100 + 4 * DELAY_MAX,
           "%s removed %" PRId64 " ms after it died, expected %" PRId64 "..%" PRId64,
           cl->nodes[b].id, took, timeout - 60, due + 100 + 4 * DELAY_MAX);
    EXPECT(cl, cl->removed_epoch[b] == 0, "a dead member was put on the removed list");
    EXPECT(cl, config_voters(&cl->cfg_last) == voters - 1, "%u voters after the cleanup, not %u",
           config_voters(&cl->cfg_last), voters - 1);
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged after the cleanup");
    if (c >= 0) {
        cluster_run_until(cl, killed + 3 * timeout);
        EXPECT(cl, is_voter_now(cl, c), "%s, dead but listed, was removed", cl->nodes[c].id);
        cluster_revive(cl, c);
    }
    cluster_revive(cl, b);
    int64_t back = cl->now;
    while (!cl->failed && !is_voter_now(cl, b) && cl->now < back + 3000) {
        cluster_step(cl);
    }
    EXPECT(cl, is_voter_now(cl, b), "%s did not join again within 3 s of its return",
           cl->nodes[b].id);
    EXPECT(cl, converged_after(cl, 3000), "no convergence after the return");
    if (cl->verbose) {
        printf("dead member removed %" PRId64 " ms after it died\n", took);
    }
}

/* The unsafe way out: a majority is gone for good (stopped, their disks
 * lost). No primary can be elected; core_force_config on the most
 * up-to-date survivor makes it the only voter of a new epoch, the other
 * survivors its learners. Writes commit again at once, the learners are
 * promoted, a brand-new node joins, and every write acknowledged before the
 * loss is still there (check_final). */
static void sc_force_config(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    for (int i = 0; i < 10 && !cl->failed; i++) {
        uint64_t t = request(cl, p, false);
        EXPECT(cl, step_until_reply(cl, t, 1000) && cl->attempts[t - 1].status == CORE_REPLY_OK,
               "request %d not acknowledged", i);
    }
    /* The writes below reach some backups only: survivors differ. */
    int lost = (int)cl->p.nodes / 2 + 1;
    int gone[SIM_MAX_NODES], n_gone = 0;
    gone[n_gone++] = p;
    for (int i = 1; n_gone < lost; i++) {
        gone[n_gone++] = (p + i) % (int)cl->p.nodes;
    }
    cluster_run_until(cl, cl->now + 100);
    for (int i = 0; i < n_gone; i++) {
        cluster_retire(cl, gone[i]);
    }
    cluster_run_until(cl, cl->now + 2000);
    EXPECT(cl, cluster_primary(cl) < 0, "a primary without a majority of voters");
    int s = -1;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        if (cl->nodes[i].alive &&
            (s < 0 || core_last_index(cl->nodes[i].core) > core_last_index(cl->nodes[s].core))) {
            s = (int)i;
        }
    }
    if (cl->failed || s < 0) {
        return;
    }
    cl->expect_forced = true;
    int64_t forced = cl->now;
    uint64_t t = admin_force(cl, s);
    EXPECT(cl, step_until_answered(cl, t, 1000) == CORE_REPLY_OK, "forced configuration: %d",
           admin_get(cl, t)->status);
    EXPECT(cl, cluster_primary(cl) == s, "%s is not primary after the forced configuration",
           cl->nodes[s].id);
    EXPECT(cl, cl->forced_index != 0, "the checker did not see the forced configuration");
    for (int i = 0; i < 5 && !cl->failed; i++) {
        uint64_t t2 = request(cl, s, false);
        EXPECT(cl, step_until_reply(cl, t2, 1000) && cl->attempts[t2 - 1].status == CORE_REPLY_OK,
               "write %d after the forced configuration not acknowledged", i);
    }
    if (cl->verbose) {
        printf("writes commit again %" PRId64 " ms after the forced configuration\n",
               cl->now - forced);
    }
    for (unsigned i = 0; i < cl->p.nodes && !cl->failed; i++) {
        if (cl->nodes[i].alive && (int)i != s) {
            int64_t end = cl->now + 3000;
            while (!cl->failed && !is_voter_now(cl, (int)i) && cl->now < end) {
                cluster_step(cl);
            }
            EXPECT(cl, is_voter_now(cl, (int)i), "survivor %s not promoted", cl->nodes[i].id);
        }
    }
    EXPECT(cl, cl->ms.forced == 1, "the forced configuration did not commit");
    add_and_promote(cl, 5000);
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 500), "no write acknowledged after the recovery");
    EXPECT(cl, converged_after(cl, 3000), "no convergence after the recovery");
    check_final(cl);
}

/* ========================================================================
 * Membership corner cases the simulator once found broken
 * ====================================================================== */

/* A primary of two voters {p, q} is cut off and, while its lease still
 * lets it, removes itself: the CONFIG entry {q} is on p alone. p loses its
 * quorum and steps down. q's latest configuration, {p, q}, needs p's vote,
 * which p refuses since its log is longer; so p, outside its own latest but
 * uncommitted configuration, must still campaign (dissertation 4.2.2), win
 * with q's vote and hand over. It once never did: nobody could ever be
 * elected. Expected: a primary and a committed write within 5 s of the
 * heal. */
static void sc_self_removal_while_isolated(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    int b = (p + 1) % 3, q = (p + 2) % 3;
    EXPECT(cl, remove_and_commit(cl, b, 2000), "removing %s failed", cl->nodes[b].id);
    cluster_retire(cl, b);
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged at two voters");
    stop_writers(cl);
    cluster_run_until(cl, cl->now + 100);
    cluster_isolate(cl, p);
    uint64_t t = admin_remove(cl, p, p, AFTER_NOTHING, 1);
    EXPECT(cl, step_until_answered(cl, t, 1000) == CORE_REPLY_OK, "self-removal answered %d",
           admin_get(cl, t)->status);
    while (!cl->failed && core_role(cl->nodes[p].core) == CORE_PRIMARY) {
        cluster_step(cl);
    }
    cluster_heal(cl);
    int64_t healed = cl->now;
    start_writers(cl);
    uint64_t acked = cl->acked;
    while (!cl->failed && cl->acked == acked && cl->now < healed + 5000) {
        cluster_step(cl);
    }
    EXPECT(cl, cl->acked > acked,
           "no write committed within 5 s of the heal: %s (%s) and %s (%s) both run and meet",
           cl->nodes[p].id, role_name((enum role)core_role(cl->nodes[p].core)), cl->nodes[q].id,
           role_name((enum role)core_role(cl->nodes[q].core)));
}

/* Dead-member cleanup with a member the primary never met: b is cut off
 * (alive, still listed); the two others restart meanwhile, so neither has
 * a peer entry for b. The new primary must not remove b as gone: discovery
 * lists it (invariant 6). It once did. */
static void sc_cleanup_spares_unmet_member(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged at first");
    int b = (p + 1) % 3, c = (p + 2) % 3;
    cluster_isolate(cl, b);
    cluster_kill(cl, p, true);
    cluster_kill(cl, c, true);
    cluster_revive(cl, p);
    cluster_revive(cl, c);
    EXPECT(cl, cluster_step_until(cl, cluster_has_primary, 3000), "no primary after the restarts");
    cluster_run_until(cl, cl->now + 3 * (int64_t)cl->p.dead_member_timeout_ms);
    EXPECT(cl, is_voter_now(cl, b), "%s, alive and listed, was removed", cl->nodes[b].id);
}

/* A scale-up during a full restart: the three members are down when three
 * brand-new replicas (empty logs, initial_size 3) start and meet only each
 * other. They bootstrap a cluster of their own, epoch 1, beside the
 * existing one (invariant 1 sees two primaries of epoch 1 once they elect);
 * when the old members come back the two clusters refuse each other by
 * cluster id, and the new replicas never join. docs/design.md's bootstrap
 * argument assumes discovery is not partitioned; a growing cluster breaks
 * it whenever initial_size newcomers see nobody else. */
static void sc_known_fresh_nodes_fork(struct cluster *cl)
{
    int p = elect(cl);
    if (p < 0) {
        return;
    }
    start_writers(cl);
    EXPECT(cl, writes_flow(cl, 300), "no write acknowledged at first");
    for (int i = 0; i < 3; i++) {
        cluster_kill(cl, i, true);
    }
    for (int i = 0; i < 3; i++) {
        cluster_add_node(cl);
    }
    cluster_run_until(cl, cl->now + 2000);
    for (int i = 0; i < 3; i++) {
        cluster_revive(cl, i);
    }
    EXPECT(cl, converged_after(cl, 5000), "no single converged cluster of six");
}

static const struct scenario scenarios[] = {
    {"elect", sc_elect, .nodes = 3},
    {"elect5", sc_elect, .nodes = 5},
    {"failover_peer_down", sc_failover_peer_down, .nodes = 3},
    {"failover_peer_down5", sc_failover_peer_down, .nodes = 5},
    {"failover_timeout", sc_failover_timeout, .nodes = 3},
    {"check_quorum", sc_check_quorum, .nodes = 3},
    {"check_quorum5", sc_check_quorum, .nodes = 5},
    {"stale_primary", sc_stale_primary, .nodes = 3},
    {"retry_dedup", sc_retry_dedup, .nodes = 3},
    {"slow_primary_disk", sc_slow_primary_disk, .nodes = 3},
    {"catch_up", sc_catch_up, .nodes = 3, .max_append_bytes = 64},
    {"figure8", sc_figure8, .nodes = 5, .max_append_bytes = 64},
    {"join", sc_join, .nodes = 4, .initial = 3, .max_append_bytes = 64},
    {"bootstrap_race", sc_bootstrap_race, .nodes = 5, .initial = 3},
    {"bootstrap_race6", sc_bootstrap_race, .nodes = 6, .initial = 3},
    {"bootstrap_disjoint", sc_bootstrap_disjoint, .nodes = 6, .initial = 3},
    /* Membership */
    {"remove_backup", sc_remove_backup, .nodes = 3, .clients = 2, .removals = true},
    {"remove_backup5", sc_remove_backup, .nodes = 5, .clients = 2, .removals = true},
    {"remove_primary", sc_remove_primary, .nodes = 3, .clients = 2, .removals = true},
    {"remove_primary5", sc_remove_primary, .nodes = 5, .clients = 2, .removals = true},
    {"membership_cycle", sc_membership_cycle, .nodes = 3, .clients = 2, .removals = true},
    {"remove_vs_partition", sc_remove_vs_partition, .nodes = 3, .clients = 2, .removals = true},
    {"remove_vs_partition5", sc_remove_vs_partition, .nodes = 5, .clients = 2, .removals = true},
    {"dead_member_cleanup", sc_dead_member_cleanup, .nodes = 3, .clients = 1,
     .dead_member_timeout_ms = 2000, .removals = true},
    {"dead_member_cleanup5", sc_dead_member_cleanup, .nodes = 5, .clients = 1,
     .dead_member_timeout_ms = 2000, .removals = true},
    {"force_config", sc_force_config, .nodes = 5, .removals = true},
    {"force_config3", sc_force_config, .nodes = 3, .removals = true},
    /* Known core bugs: run only when named (--scenario) or with --include-known. */
    {"self_removal_while_isolated", sc_self_removal_while_isolated, .nodes = 3, .clients = 1,
     .removals = true},
    {"cleanup_spares_unmet_member", sc_cleanup_spares_unmet_member, .nodes = 3, .clients = 1,
     .dead_member_timeout_ms = 1000, .removals = true},
    {"known_fresh_nodes_fork", sc_known_fresh_nodes_fork, .nodes = 3, .clients = 1,
     .removals = true, .known_bug = true},
    /* dead_member_cleanup, failing on a "removed" event that names the wrong replica. */
    {"cleanup_event_subject", sc_dead_member_cleanup, .nodes = 5, .clients = 1,
     .dead_member_timeout_ms = 2000, .removals = true, .strict = true},
};

/* Runs every scenario (or only `only`) over a few seeds each (or only
 * `seed`, when not 0); returns the number that failed. */
int scenarios_run(const char *only, uint64_t seed, bool verbose, bool include_known)
{
    int failed = 0, ran = 0, known_skipped = 0;
    const uint64_t first = seed ? seed : 1, last = seed ? seed : 20;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        const struct scenario *s = &scenarios[i];
        if (only && strcmp(only, "list") == 0) {
            printf("%s\n", s->name);
            continue;
        }
        if (only && strcmp(only, s->name) != 0) {
            continue;
        }
        if (!only && s->known_bug && !include_known) {
            known_skipped++;
            continue;
        }
        for (uint64_t sd = first; sd <= last; sd++) {
            struct cluster *cl = setup(s, sd, verbose);
            cl->strict_known = s->strict || include_known;
            s->run(cl);
            ran++;
            if (cl->failed) {
                failed++;
                cluster_free(cl);
                break; /* one report per scenario is enough */
            }
            cluster_free(cl);
        }
    }
    if (only && strcmp(only, "list") == 0) {
        return 0;
    }
    if (ran == 0) {
        fprintf(stderr, "sim: no scenario named '%s' (try --scenario list)\n", only);
        return 1;
    }
    printf("sim: %d scenario runs, %d failed (%u fast failovers split the vote)\n", ran, failed,
           split_failovers);
    if (known_skipped) {
        printf("sim: %d scenarios skipped: they reproduce known core bugs (known_*; "
               "--include-known runs them)\n",
               known_skipped);
    }
    if (handovers.n) {
        int64_t gaps[HANDOVERS_MAX], writes[HANDOVERS_MAX];
        unsigned fast = 0;
        memcpy(gaps, handovers.gap, sizeof(gaps));
        memcpy(writes, handovers.write, sizeof(writes));
        for (unsigned i = 0; i < handovers.n; i++) {
            fast += writes[i] < 300;
        }
        int64_t g = median(gaps, handovers.n), w = median(writes, handovers.n);
        printf("sim: %u handovers: new epoch commits %" PRId64 " ms (median, max %" PRId64
               ") after the old primary steps down; next write committed %" PRId64
               " ms (median, max %" PRId64 ") after the removal request, %u of %u under one "
               "election timeout; %u needed more than one round\n",
               handovers.n, g, gaps[handovers.n - 1], w, writes[handovers.n - 1], fast, handovers.n,
               handovers.extra_rounds);
    }
    if (removal_survived + removal_lost) {
        printf("sim: removals racing a partition of the primary: %u committed, %u lost (%u of "
               "them after an OK); %u cuts left the rest unable to elect until healed\n",
               removal_survived, removal_lost, removal_lost_after_ok, removal_stalled);
    }
    return failed;
}
