/*
 * tests/integration/minority_chaos.c — guarantee 2 under churn: five
 * replicas, three writer threads sending requests continuously, while every
 * 300-700 ms a random minority (one or two replicas, the primary as likely
 * as any) is SIGKILLed or SIGSTOPped, and the previous victims come back
 * (restart with the same id, data dir and port, or SIGCONT). At most two are
 * ever down, so a majority of three always survives.
 *
 * After ~15 s everything is healed and the writers' last requests must be
 * acknowledged (liveness); then every acknowledged request must appear
 * exactly once in every replica's committed log, at the index, epoch and
 * primary its OK reply named, in each writer's acknowledgement order, and
 * the five logs must be identical. The seed is printed; CHAOS_SEED replays
 * the same victim choices (timings differ, it is real processes).
 */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_REPLICAS  5
#define WRITERS     3
#define PER_WRITER  150
#define CHAOS_MS    15000
#define PACE_MS     100   /* between a writer's requests: time, not count, ends most runs */
#define HEALED_MS   30000 /* after healing, the last requests must get through */
#define MAX_VICTIMS 2

struct writer_arg {
    struct it_cluster *cl;
    struct it_acks *acks;
    int id;
    int64_t stop_at; /* no new request after this */
    int64_t give_up; /* an unacknowledged request fails the test after this */
    unsigned sent;
    unsigned acked;
    int64_t worst_ms;
    char unacked[IT_CLIENT_ID]; /* "" when every request was acknowledged */
};

static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    struct it_writer w;
    it_writer_init(&w, a->cl, a->id);
    /* Shorter than the default: a paused primary should not hold a
     * writer for long before it tries elsewhere (same id). */
    w.call_timeout_ms = 1000;
    for (unsigned k = 0; k < PER_WRITER && it_now_ms() < a->stop_at; k++) {
        char id[IT_CLIENT_ID], data[64];
        snprintf(id, sizeof(id), "w%d-%04u", a->id, k);
        snprintf(data, sizeof(data), "writer %d request %u", a->id, k);
        a->sent++;
        struct it_ack ack;
        if (it_write(&w, id, data, (int)(a->give_up - it_now_ms()), &ack) != 0) {
            snprintf(a->unacked, sizeof(a->unacked), "%s", id);
            break;
        }
        it_acks_add(a->acks, &ack);
        a->acked++;
        if (ack.latency_ms > a->worst_ms) {
            a->worst_ms = ack.latency_ms;
        }
        it_sleep_ms(PACE_MS);
    }
    it_writer_close(&w);
    return NULL;
}

/* xorshift64*: reproducible victim choices from the printed seed. */
static uint64_t rng_state;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (unsigned)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

struct victim {
    int i;
    bool paused; /* else killed */
};

static void heal(struct it_cluster *cl, struct victim *v, unsigned *n)
{
    for (unsigned k = 0; k < *n; k++) {
        if (v[k].paused) {
            it_resume(cl, (unsigned)v[k].i);
        } else {
            it_start(cl, (unsigned)v[k].i);
        }
    }
    *n = 0;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "minority_chaos");
    const char *seed_env = getenv("CHAOS_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10)
                             : ((uint64_t)time(NULL) * 1000003u) ^ (uint64_t)getpid();
    rng_state = seed ? seed : 1;
    it_log("seed %llu (CHAOS_SEED=%llu replays the victim choices)", (unsigned long long)seed,
           (unsigned long long)seed);

    struct it_cluster *cl = it_cluster_new(N_REPLICAS);
    struct it_acks acks;
    it_acks_init(&acks);
    it_start_all(cl);
    struct it_status p;
    it_wait_primary(cl, &p);
    it_wait_caught_up(cl, 0, 10000);

    int64_t t0 = it_now_ms();
    struct writer_arg args[WRITERS];
    pthread_t th[WRITERS];
    for (int k = 0; k < WRITERS; k++) {
        args[k] = (struct writer_arg){.cl = cl,
                                      .acks = &acks,
                                      .id = k,
                                      .stop_at = t0 + CHAOS_MS,
                                      .give_up = t0 + CHAOS_MS + HEALED_MS};
        IT_CHECK(pthread_create(&th[k], NULL, writer_main, &args[k]) == 0, "pthread_create");
    }

    struct victim v[MAX_VICTIMS];
    unsigned n_victims = 0, kills = 0, pauses = 0, steps = 0, primary_hits = 0;
    while (it_now_ms() < t0 + CHAOS_MS) {
        int64_t until = it_now_ms() + 300 + rnd(400);
        while (it_now_ms() < until) {
            it_check_alive();
            it_sleep_ms(10);
        }
        heal(cl, v, &n_victims);
        int pi = it_primary_now(cl, &p);
        unsigned want = 1 + rnd(MAX_VICTIMS);
        char what[128] = "";
        size_t off = 0;
        while (n_victims < want) {
            int i = (int)rnd(N_REPLICAS);
            bool dup = false;
            for (unsigned k = 0; k < n_victims; k++) {
                dup |= v[k].i == i;
            }
            if (dup) {
                continue;
            }
            bool pause = rnd(10) < 3;
            if (pause) {
                it_pause(cl, (unsigned)i);
                pauses++;
            } else {
                it_kill(cl, (unsigned)i, SIGKILL);
                kills++;
            }
            primary_hits += i == pi;
            v[n_victims++] = (struct victim){i, pause};
            off += (size_t)snprintf(what + off, sizeof(what) - off, " %s %s%s",
                                    pause ? "SIGSTOP" : "SIGKILL", cl->r[i].id,
                                    i == pi ? " (primary)" : "");
        }
        steps++;
        it_log("step %u:%s; %zu acks so far", steps, what, acks.n);
    }
    heal(cl, v, &n_victims);
    it_log("chaos over after %u steps (%u kills, %u pauses, %u hit the primary); all healed", steps,
           kills, pauses, primary_hits);

    for (int k = 0; k < WRITERS; k++) {
        pthread_join(th[k], NULL);
    }
    int64_t worst = 0;
    for (int k = 0; k < WRITERS; k++) {
        IT_CHECK(args[k].unacked[0] == '\0',
                 "writer %d: %s was not acknowledged within %d ms after healing", k,
                 args[k].unacked, HEALED_MS);
        it_log("writer %d: %u sent, %u acknowledged, slowest %lld ms", k, args[k].sent,
               args[k].acked, (long long)args[k].worst_ms);
        worst = args[k].worst_ms > worst ? args[k].worst_ms : worst;
    }
    IT_CHECK(acks.n >= 50, "only %zu requests acknowledged in %d ms of chaos", acks.n, CHAOS_MS);

    it_wait_caught_up(cl, 0, 30000);
    it_wait_primary(cl, &p);
    it_log("%zu requests acknowledged (slowest %lld ms); primary %s in epoch %llu", acks.n,
           (long long)worst, p.id, (unsigned long long)p.epoch);
    it_check_logs(cl, &acks, NULL, 0);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
