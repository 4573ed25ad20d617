/*
 * tests/sim/sim.c — the simulator's command line and its random fault
 * schedules.
 *
 * A schedule is one seed: the cluster's size (3 or 5, some five-node ones
 * starting as three that later grow by two learners), its network character
 * and fsync latency, then a bounded period (10-30 simulated s) of random
 * faults (kills and revives, sometimes of a majority or of a primary just
 * elected; partitions; pauses like SIGSTOP; lossy periods) while clients
 * keep writing, then everything heals and the cluster must converge: a
 * primary, every request acknowledged, every log equal and committed, every
 * replica a voter. The invariants in check.c run after every step.
 *
 *   sim [--schedules N] [--base-seed B]   N schedules, seeds B..B+N-1
 *   sim --seed S [--verbose]              replay one schedule
 *   sim --scenario NAME [--verbose]       one scripted scenario
 * SIM_SCHEDULES in the environment overrides N (to run more in CI).
 */
#include "sim.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct totals {
    uint64_t acked;
    uint64_t elections;
    uint64_t kills;
    uint64_t steps;
    int64_t sim_ms;
};

struct schedule {
    int64_t fault_end;
    unsigned kill_elected_permille;
};

/* ========================================================================
 * Faults
 * ====================================================================== */

static int pick_alive(struct cluster *cl)
{
    int alive[SIM_MAX_NODES], n = 0;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        if (cl->nodes[i].alive) {
            alive[n++] = (int)i;
        }
    }
    return n ? alive[rng_between(&cl->rng, 0, n - 1)] : -1;
}

static int pick_dead(struct cluster *cl)
{
    int dead[SIM_MAX_NODES], n = 0;
    for (unsigned i = 0; i < cl->p.nodes; i++) {
        if (!cl->nodes[i].alive) {
            dead[n++] = (int)i;
        }
    }
    return n ? dead[rng_between(&cl->rng, 0, n - 1)] : -1;
}

static void kill_node(struct cluster *cl, int i)
{
    unsigned majority = cl->p.nodes / 2 + 1;
    bool breaks_majority = cluster_alive(cl) - 1 < majority;
    /* Mostly keep a majority, but losing one briefly must be survivable too. */
    if (i < 0 || cluster_alive(cl) <= 1 || (breaks_majority && !rng_permille(&cl->rng, 150))) {
        return;
    }
    /* A dead process refuses connections; peers notice unless the cut hides it. */
    cluster_kill(cl, i, rng_permille(&cl->rng, 600));
    int64_t down =
        breaks_majority ? rng_between(&cl->rng, 100, 1000) : rng_between(&cl->rng, 100, 3000);
    struct sim_event *ev = cluster_event(cl, EV_REVIVE, cl->now + down);
    ev->to = i;
    ev->gen = cl->nodes[i].kill_gen;
}

static void partition(struct cluster *cl)
{
    if (rng_permille(&cl->rng, 500)) {
        cluster_isolate(cl, (int)rng_between(&cl->rng, 0, cl->p.nodes - 1));
    } else {
        unsigned full = (1u << cl->p.nodes) - 1;
        cluster_split(cl, (unsigned)rng_between(&cl->rng, 1, full - 1));
    }
    struct sim_event *ev = cluster_event(cl, EV_HEAL, cl->now + rng_between(&cl->rng, 200, 3000));
    ev->gen = cl->partition_gen;
}

static void pause_node(struct cluster *cl)
{
    int p = cluster_primary(cl);
    int i = p >= 0 && rng_permille(&cl->rng, 500) ? p : pick_alive(cl);
    if (i >= 0 && !cl->nodes[i].paused) {
        cluster_pause(cl, i, cl->now + rng_between(&cl->rng, 100, 2000));
    }
}

static void lossy(struct cluster *cl)
{
    cl->extra_drop_permille = (unsigned)rng_between(&cl->rng, 100, 300);
    cl->lossy_gen++;
    sim_trace(cl, "LOSSY %u/1000", cl->extra_drop_permille);
    struct sim_event *ev =
        cluster_event(cl, EV_LOSSY_END, cl->now + rng_between(&cl->rng, 300, 2000));
    ev->gen = cl->lossy_gen;
}

static void fault_hook(struct cluster *cl, void *data)
{
    struct schedule *s = data;
    if (cl->now >= s->fault_end) {
        cl->hook_at = SIM_NEVER;
        return;
    }
    unsigned roll = (unsigned)rng_between(&cl->rng, 0, 99);
    if (roll < 20) {
        kill_node(cl, pick_alive(cl));
    } else if (roll < 35) {
        kill_node(cl, cluster_primary(cl));
    } else if (roll < 50) {
        partition(cl);
    } else if (roll < 62) {
        pause_node(cl);
    } else if (roll < 72) {
        lossy(cl);
    } else if (roll < 80) {
        int d = pick_dead(cl);
        if (d >= 0) {
            cluster_revive(cl, d);
        }
    }
    cl->hook_at = cl->now + rng_between(&cl->rng, 100, 1500);
}

/* Hair trigger: kill a primary moments after it is elected, while its
 * epoch's first entries (and older ones it is re-replicating) are only
 * partly copied. That is where commit rules for older epochs matter. */
static void kill_when_elected(struct cluster *cl, int node)
{
    struct schedule *s = cl->hook_data;
    if (cl->now >= s->fault_end || !rng_permille(&cl->rng, s->kill_elected_permille)) {
        return;
    }
    struct sim_event *ev = cluster_event(cl, EV_KILL, cl->now + rng_between(&cl->rng, 0, 30));
    ev->to = node;
    ev->gen = cl->nodes[node].incarnation;
    ev->from = rng_permille(&cl->rng, 500);
    ev->arg = rng_between(&cl->rng, 100, 2000);
}

/* The fault period is over: heal everything and let the cluster settle. */
static void end_faults(struct cluster *cl)
{
    sim_trace(cl, "FAULTS END: heal, revive all, clients finish");
    cl->hook_at = SIM_NEVER;
    cl->extra_drop_permille = 0;
    cl->lossy_gen++;
    cl->p.drop_permille = 0;
    cluster_heal(cl);
    for (unsigned i = 0; i < cl->p.nodes && !cl->failed; i++) {
        cluster_revive(cl, (int)i);
    }
    for (unsigned k = 0; k < cl->p.clients; k++) {
        cl->clients[k].stopped = true;
    }
}

static void explain_liveness(struct cluster *cl, int64_t waited)
{
    unsigned busy = 0;
    for (unsigned k = 0; k < cl->p.clients; k++) {
        busy += cl->clients[k].busy;
    }
    sim_fail(cl,
             "liveness: not converged %" PRId64
             " ms after the faults ended (primary: %s, clients still waiting: %u)",
             waited, cluster_has_primary(cl) ? "yes" : "no", busy);
}

/* ========================================================================
 * One schedule
 * ====================================================================== */

static bool run_schedule(uint64_t seed, unsigned nodes, bool verbose, struct totals *t)
{
    struct rng r = {seed};
    struct sim_params p = {0};
    p.nodes = rng_permille(&r, 500) ? 3 : 5;
    if (nodes) {
        p.nodes = nodes;
    }
    p.clients = (unsigned)rng_between(&r, 1, 3);
    p.delay_min = 1;
    p.delay_max = (unsigned)rng_between(&r, 5, 20);
    p.slow_permille = 20;
    p.slow_max = 200;
    p.drop_permille = rng_permille(&r, 400) ? (unsigned)rng_between(&r, 1, 20) : 0;
    p.dup_permille = rng_permille(&r, 300) ? 5 : 0;
    p.reorder_permille = rng_permille(&r, 300) ? 10 : 0;
    p.fsync_max = rng_permille(&r, 500) ? (unsigned)rng_between(&r, 1, 5) : 0;
    static const size_t append_bytes[] = {1 << 20, 1 << 20, 256, 64};
    p.max_append_bytes = append_bytes[rng_between(&r, 0, 3)];
    /* Some five-node clusters start as three and grow: r4 and r5 join as
     * learners and must be promoted once caught up. */
    bool grow = rng_permille(&r, 300);
    if (grow && p.nodes == 5) {
        p.initial_size = 3;
    }
    p.client_timeout_ms = 1000;
    p.think_max_ms = 100;
    struct schedule s = {.fault_end = rng_between(&r, 10000, 30000)};
    s.kill_elected_permille = rng_permille(&r, 300) ? (unsigned)rng_between(&r, 100, 500) : 0;

    struct cluster *cl = cluster_new(&p, seed, verbose);
    cl->replay_nodes = nodes;
    if (verbose) {
        printf("schedule %" PRIu64 ": %u nodes (%u at first), %u clients, delay %u..%u ms, "
               "drop %u/1000, "
               "dup %u/1000, reorder %u/1000, fsync up to %u ms, append %zu bytes, "
               "new primaries killed %u/1000, faults until %" PRId64 " ms\n",
               seed, p.nodes, p.initial_size ? p.initial_size : p.nodes, p.clients, p.delay_min,
               p.delay_max, p.drop_permille, p.dup_permille, p.reorder_permille, p.fsync_max,
               p.max_append_bytes, s.kill_elected_permille, s.fault_end);
    }
    cl->hook = fault_hook;
    cl->hook_data = &s;
    cl->on_elected = kill_when_elected;
    cl->hook_at = rng_between(&cl->rng, 300, 1500); /* let it elect first, usually */
    cluster_start(cl);
    for (unsigned i = p.initial_size; p.initial_size && i < p.nodes; i++) {
        struct sim_event *ev = cluster_event(cl, EV_REVIVE, rng_between(&cl->rng, 200, 8000));
        ev->to = (int)i;
        ev->gen = cl->nodes[i].kill_gen;
    }
    cluster_run_until(cl, s.fault_end);
    if (!cl->failed) {
        end_faults(cl);
        const int64_t patience = 60000;
        if (!cluster_step_until(cl, cluster_converged, patience) && !cl->failed) {
            explain_liveness(cl, cl->now - s.fault_end);
        }
    }
    if (!cl->failed) {
        check_final(cl);
    }
    t->acked += cl->acked;
    t->elections += cl->elections;
    t->kills += cl->kills;
    t->steps += cl->steps;
    t->sim_ms += cl->now;
    bool ok = !cl->failed;
    if (verbose) {
        printf("schedule %" PRIu64 ": %s at %" PRId64 " ms, %zu committed, %" PRIu64
               " acknowledged\n",
               seed, ok ? "passed" : "FAILED", cl->now, cl->n_committed, cl->acked);
    }
    cluster_free(cl);
    return ok;
}

/* ========================================================================
 * Command line
 * ====================================================================== */

static void usage(FILE *f)
{
    fprintf(f, "usage: sim [--schedules N] [--base-seed B] [--seed S] [--nodes 3|5]\n"
               "           [--scenario NAME] [--no-scenarios] [--verbose]\n"
               "  --schedules N  random fault schedules to run (default 2000; the\n"
               "                 SIM_SCHEDULES environment variable overrides)\n"
               "  --base-seed B  first schedule's seed (default 1); schedule i uses B+i\n"
               "  --seed S       run only the schedule with seed S (replay a failure)\n"
               "  --nodes N      force the cluster size (default: 3 or 5 per seed)\n"
               "  --scenario X   run only scripted scenario X ('list' lists them);\n"
               "                 with --seed, only that seed\n"
               "  --no-scenarios skip the scripted scenarios\n"
               "  --verbose      trace every event\n");
}

static double elapsed(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    unsigned long long schedules = 2000, base = 1, seed = 0;
    bool one_seed = false, verbose = false, scenarios = true;
    const char *scenario = NULL;
    unsigned nodes = 0;
    static const struct option opts[] = {
        {"schedules", required_argument, NULL, 'n'},
        {"base-seed", required_argument, NULL, 'b'},
        {"seed", required_argument, NULL, 's'},
        {"nodes", required_argument, NULL, 'N'},
        {"scenario", required_argument, NULL, 'S'},
        {"no-scenarios", no_argument, NULL, 'x'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "n:b:s:N:S:xvh", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            schedules = strtoull(optarg, NULL, 10);
            break;
        case 'b':
            base = strtoull(optarg, NULL, 10);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 10);
            one_seed = true;
            break;
        case 'N':
            nodes = (unsigned)atoi(optarg);
            if (nodes < 1 || nodes > SIM_MAX_NODES) {
                fprintf(stderr, "sim: --nodes must be 1..%d\n", SIM_MAX_NODES);
                return 2;
            }
            break;
        case 'S':
            scenario = optarg;
            break;
        case 'x':
            scenarios = false;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *env = getenv("SIM_SCHEDULES");
    if (env && *env) {
        schedules = strtoull(env, NULL, 10);
    }
    if (scenario) {
        return scenarios_run(scenario, one_seed ? seed : 0, verbose) == 0 ? 0 : 1;
    }

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int failed_scenarios = 0;
    if (scenarios && !one_seed) {
        failed_scenarios = scenarios_run(NULL, 0, verbose);
    }
    struct totals t = {0};
    unsigned long long failed = 0, ran = 0;
    if (one_seed) {
        ran = 1;
        failed = !run_schedule(seed, nodes, verbose, &t);
    } else {
        for (unsigned long long i = 0; i < schedules; i++) {
            ran++;
            if (!run_schedule(base + i, nodes, verbose, &t)) {
                failed++;
                if (failed >= 20) {
                    fprintf(stderr, "sim: stopping after %llu failures\n", failed);
                    break;
                }
            }
        }
    }
    printf("sim: %llu schedules, %llu failed, %" PRIu64 " requests acknowledged, %" PRIu64
           " elections, %" PRIu64 " kills (%.1f simulated s, %" PRIu64 " steps, %.1f s)\n",
           ran, failed, t.acked, t.elections, t.kills, (double)t.sim_ms / 1000.0, t.steps,
           elapsed(&t0));
    return failed == 0 && failed_scenarios == 0 ? 0 : 1;
}
