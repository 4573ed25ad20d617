/*
 * tests/sim/scenarios.c — scripted cases with exact assertions on simulated
 * time, run before the random schedules: election, fast failover on a
 * refused connection, failover by timeout, check-quorum, a stale primary
 * coming back from a pause, retries applied once, catch-up after a crash,
 * a learner's join and promotion, and the paper's Figure 8 (no commit of an
 * older epoch by counting).
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

static struct cluster *setup(const char *name, unsigned nodes, unsigned initial,
                             size_t max_append_bytes, uint64_t seed, bool verbose)
{
    struct sim_params p = {
        .nodes = nodes,
        .initial_size = initial,
        .clients = 1,
        .delay_min = 1,
        .delay_max = DELAY_MAX,
        .max_append_bytes = max_append_bytes ? max_append_bytes : 1 << 20,
        .client_timeout_ms = 10000,
        .think_max_ms = 0,
    };
    p.boot_all = strncmp(name, "bootstrap_", 10) == 0;
    p.no_discovery = strcmp(name, "bootstrap_disjoint") == 0;
    struct cluster *cl = cluster_new(&p, seed, verbose);
    cl->scenario = name;
    cl->clients[0].manual = true;
    if (verbose) {
        printf("scenario %s (seed %" PRIu64 "): %u nodes\n", name, seed, nodes);
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

struct scenario {
    const char *name;
    void (*run)(struct cluster *cl);
    unsigned nodes;
    unsigned initial;        /* 0: all nodes bootstrap */
    size_t max_append_bytes; /* 0: default */
};

static const struct scenario scenarios[] = {
    {"elect", sc_elect, 3, 0, 0},
    {"elect5", sc_elect, 5, 0, 0},
    {"failover_peer_down", sc_failover_peer_down, 3, 0, 0},
    {"failover_peer_down5", sc_failover_peer_down, 5, 0, 0},
    {"failover_timeout", sc_failover_timeout, 3, 0, 0},
    {"check_quorum", sc_check_quorum, 3, 0, 0},
    {"check_quorum5", sc_check_quorum, 5, 0, 0},
    {"stale_primary", sc_stale_primary, 3, 0, 0},
    {"retry_dedup", sc_retry_dedup, 3, 0, 0},
    {"slow_primary_disk", sc_slow_primary_disk, 3, 0, 0},
    {"catch_up", sc_catch_up, 3, 0, 64},
    {"figure8", sc_figure8, 5, 0, 64},
    {"join", sc_join, 4, 3, 64},
    {"bootstrap_race", sc_bootstrap_race, 5, 3, 0},
    {"bootstrap_race6", sc_bootstrap_race, 6, 3, 0},
    {"bootstrap_disjoint", sc_bootstrap_disjoint, 6, 3, 0},
};

/* Runs every scenario (or only `only`) over a few seeds each (or only
 * `seed`, when not 0); returns the number that failed. */
int scenarios_run(const char *only, uint64_t seed, bool verbose)
{
    int failed = 0, ran = 0;
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
        for (uint64_t sd = first; sd <= last; sd++) {
            struct cluster *cl =
                setup(s->name, s->nodes, s->initial, s->max_append_bytes, sd, verbose);
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
    return failed;
}
