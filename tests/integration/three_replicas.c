/*
 * tests/integration/three_replicas.c — the quiet path: three replicas elect
 * one primary, 100 sequential writes are acknowledged, and every replica's
 * committed log holds exactly those 100 requests, once each, in the order
 * they were acknowledged, each stamped with the primary that processed it.
 * Also prints how long a fresh cluster takes to its first committed write
 * (bootstrap election + one replicated fsync).
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#define WRITES 100

int main(int argc, char **argv)
{
    it_init(argc, argv, "three_replicas");
    struct it_cluster *cl = it_cluster_new(3);
    struct it_writer w;
    struct it_acks acks;
    it_acks_init(&acks);
    it_start_all(cl);
    it_writer_init(&w, cl, 0);

    /* The first write waits out the bootstrap election. */
    struct it_ack first;
    it_write_ok(&w, "three-0000", "three data 0", 30000, &first);
    it_acks_add(&acks, &first);
    it_log("first committed write %lld ms after starting the processes (index %llu, epoch "
           "%llu, primary %s)",
           (long long)(it_now_ms() - cl->started_ms), (unsigned long long)first.index,
           (unsigned long long)first.epoch, first.primary);

    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    it_write_series(&w, &acks, "three", 1, WRITES - 1, 10000);
    struct it_status p2;
    int pi2 = it_wait_primary(cl, &p2);
    /* Nothing failed, so nothing may have moved: one primary, one epoch. */
    IT_CHECK(pi == pi2 && p.epoch == p2.epoch,
             "primary changed from %s/%llu to %s/%llu in a quiet "
             "cluster",
             p.id, (unsigned long long)p.epoch, p2.id, (unsigned long long)p2.epoch);
    for (size_t k = 0; k < acks.n; k++) {
        IT_CHECK(strcmp(acks.a[k].primary, p.id) == 0 && acks.a[k].epoch == p.epoch,
                 "%s acknowledged by %s in epoch %llu; the primary was %s in epoch %llu",
                 acks.a[k].client_id, acks.a[k].primary, (unsigned long long)acks.a[k].epoch, p.id,
                 (unsigned long long)p.epoch);
    }
    it_log("%d writes acknowledged by primary %s in epoch %llu", WRITES, p.id,
           (unsigned long long)p.epoch);

    it_wait_caught_up(cl, 0, 10000);
    /* No `maybe` ids: the log must hold exactly the 100 acknowledged ones. */
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
