/*
 * tests/integration/five_replicas.c — five replicas, 150 writes in three
 * phases with the primary SIGKILLed between phases (two kills: three of
 * five survive, still a majority). Each phase's writes must all be
 * processed by that phase's primary, the killed replicas then restart and
 * catch up, and all five committed logs must agree and hold every
 * acknowledged write exactly once, in acknowledgement order.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define PHASES    3
#define PER_PHASE 50

int main(int argc, char **argv)
{
    it_init(argc, argv, "five_replicas");
    struct it_cluster *cl = it_cluster_new(5);
    struct it_writer w;
    struct it_acks acks;
    it_acks_init(&acks);
    it_start_all(cl);
    it_writer_init(&w, cl, 0);
    int killed[PHASES];
    unsigned killed_mask = 0;
    uint64_t last_epoch = 0;

    for (int phase = 0; phase < PHASES; phase++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "five-p%d", phase);
        int64_t t0 = it_now_ms();
        /* The first write of a phase rides out the election. */
        it_write_series(&w, &acks, prefix, 0, 1, 30000);
        const struct it_ack *first = &acks.a[acks.n - 1];
        it_log("phase %d: first write acknowledged after %lld ms by %s (epoch %llu)", phase,
               (long long)(it_now_ms() - t0), first->primary, (unsigned long long)first->epoch);
        struct it_status p;
        int pi = it_wait_primary(cl, &p);
        IT_CHECK(strcmp(p.id, first->primary) == 0, "primary %s, but %s acknowledged", p.id,
                 first->primary);
        IT_CHECK(p.epoch > last_epoch, "phase %d: epoch %llu after %llu", phase,
                 (unsigned long long)p.epoch, (unsigned long long)last_epoch);
        IT_CHECK(!(killed_mask & (1u << pi)), "killed replica %s is primary", p.id);
        last_epoch = p.epoch;
        size_t from = acks.n - 1;
        it_write_series(&w, &acks, prefix, 1, PER_PHASE - 1, 10000);
        for (size_t k = from; k < acks.n; k++) {
            IT_CHECK(strcmp(acks.a[k].primary, p.id) == 0 && acks.a[k].epoch == p.epoch,
                     "phase %d: %s acknowledged by %s/%llu, primary was %s/%llu", phase,
                     acks.a[k].client_id, acks.a[k].primary, (unsigned long long)acks.a[k].epoch,
                     p.id, (unsigned long long)p.epoch);
        }
        if (phase < PHASES - 1) {
            it_log("phase %d: %d writes by %s; SIGKILL %s", phase, PER_PHASE, p.id, p.id);
            it_kill(cl, (unsigned)pi, SIGKILL);
            killed[phase] = pi;
            killed_mask |= 1u << pi;
        }
    }

    /* The survivors agree before anyone comes back... */
    it_wait_caught_up(cl, 0, 10000);
    it_check_logs(cl, &acks, NULL, 0);
    /* ...and the killed ones catch up after restarting. */
    for (int k = 0; k < PHASES - 1; k++) {
        it_start(cl, (unsigned)killed[k]);
    }
    it_wait_caught_up(cl, 0, 20000);
    it_write_series(&w, &acks, "five-after", 0, 10, 10000);
    it_wait_caught_up(cl, 0, 20000);
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
