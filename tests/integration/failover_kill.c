/*
 * tests/integration/failover_kill.c — failover after SIGKILL, 20 times over.
 *
 * Each round: SIGKILL the primary, start the clock at once, send the next
 * write (the writer follows hints and retries the same id across the
 * failover), stop the clock at its acknowledgement, then restart the killed
 * replica with its id, data dir and port and wait until it has caught up.
 * Prints every time and `failover: median X ms, worst Y ms over 20 kills`
 * (the benchmark figure). Asserts only a generous bound per failover (10 s)
 * and that no acknowledged request is lost: all of them sit exactly once
 * in every replica's final committed log.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS       20
#define BOUND_MS     10000
#define EXTRA_WRITES 5 /* per round, so every restart has entries to catch up on */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "failover_kill");
    struct it_writer w;
    struct it_acks acks;
    struct it_cluster *cl = it_cluster_warm(3, &w, &acks, "warmup", 10);

    int64_t times[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        struct it_status p;
        int pi = it_wait_primary(cl, &p);
        /* Warm the writer's connection to the primary, as a client that
         * was already talking to it would be. */
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "before-%02d", round);
        it_write_series(&w, &acks, prefix, 0, 1, BOUND_MS);

        int64_t t0 = it_now_ms();
        it_kill(cl, (unsigned)pi, SIGKILL);
        char id[64], data[128];
        snprintf(id, sizeof(id), "failover-%02d", round);
        snprintf(data, sizeof(data), "after killing %s in epoch %llu", p.id,
                 (unsigned long long)p.epoch);
        struct it_ack a;
        it_write_ok(&w, id, data, BOUND_MS, &a);
        times[round] = it_now_ms() - t0;
        it_acks_add(&acks, &a);
        IT_CHECK(strcmp(a.primary, p.id) != 0 && a.epoch > p.epoch,
                 "%s acknowledged by %s in epoch %llu after killing %s in epoch %llu", id,
                 a.primary, (unsigned long long)a.epoch, p.id, (unsigned long long)p.epoch);
        it_log("round %2d: killed %s (epoch %llu); %s acknowledged by %s (epoch %llu) after %lld "
               "ms, %u attempt(s)",
               round + 1, p.id, (unsigned long long)p.epoch, id, a.primary,
               (unsigned long long)a.epoch, (long long)times[round], a.attempts);

        snprintf(prefix, sizeof(prefix), "after-%02d", round);
        it_write_series(&w, &acks, prefix, 0, EXTRA_WRITES, BOUND_MS);
        int64_t r0 = it_now_ms();
        it_start(cl, (unsigned)pi);
        IT_WAIT_UNTIL(20000, "the restarted replica to catch up",
                      it_is_caught_up(cl, (unsigned)pi));
        it_log("round %2d: restarted %s caught up in %lld ms", round + 1, p.id,
               (long long)(it_now_ms() - r0));
    }

    int64_t sorted[ROUNDS];
    memcpy(sorted, times, sizeof(times));
    qsort(sorted, ROUNDS, sizeof(sorted[0]), cmp_i64);
    int64_t median = (sorted[ROUNDS / 2 - 1] + sorted[ROUNDS / 2]) / 2;
    it_log("failover: median %lld ms, worst %lld ms over %d kills", (long long)median,
           (long long)sorted[ROUNDS - 1], ROUNDS);

    it_wait_caught_up(cl, 0, 20000);
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
