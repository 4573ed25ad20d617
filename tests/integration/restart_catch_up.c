/*
 * tests/integration/restart_catch_up.c — guarantee 4: a returning replica
 * catches up from the primary.
 *
 * Part 1: SIGKILL a backup, commit 500 writes without it, restart it (same
 * id, data dir, port): its commit index reaches the primary's and its
 * committed log equals the others'. Part 2: SIGKILL a backup and delete its
 * data dir, so it comes back with the same id and an empty log; it must
 * catch up from scratch just the same.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define WHILE_DOWN 500

/* A backup, preferring one that is not `avoid`. */
static int pick_backup(struct it_cluster *cl, int avoid)
{
    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    int pick = -1;
    for (unsigned i = 0; i < cl->n; i++) {
        if ((int)i != pi && it_up(cl, i) && (pick < 0 || pick == avoid)) {
            pick = (int)i;
        }
    }
    IT_CHECK(pick >= 0, "no backup up");
    return pick;
}

static void catch_up(struct it_cluster *cl, struct it_writer *w, struct it_acks *acks, int b,
                     const char *what)
{
    struct it_status p;
    it_wait_primary(cl, &p);
    int64_t t0 = it_now_ms();
    it_start(cl, (unsigned)b);
    char desc[128];
    snprintf(desc, sizeof(desc), "%s (%s) to catch up with the primary", cl->r[b].id, what);
    IT_WAIT_UNTIL(20000, desc, it_is_caught_up(cl, (unsigned)b));
    it_log("%s: %s caught up to commit index %llu in %lld ms", what, cl->r[b].id,
           (unsigned long long)p.commit_index, (long long)(it_now_ms() - t0));
    it_wait_caught_up(cl, 0, 10000);
    it_check_logs(cl, acks, NULL, 0);
    /* And it is a working member again: writes still commit everywhere. */
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "after-%s", what);
    it_write_series(w, acks, prefix, 0, 10, 10000);
    it_wait_caught_up(cl, 0, 10000);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "restart_catch_up");
    struct it_writer w;
    struct it_acks acks;
    struct it_cluster *cl = it_cluster_warm(3, &w, &acks, "before", 20);

    int b = pick_backup(cl, -1);
    it_kill(cl, (unsigned)b, SIGKILL);
    int64_t t0 = it_now_ms();
    it_write_series(&w, &acks, "down", 0, WHILE_DOWN, 10000);
    it_log("killed backup %s; %d writes committed without it in %lld ms", cl->r[b].id, WHILE_DOWN,
           (long long)(it_now_ms() - t0));
    catch_up(cl, &w, &acks, b, "restart");

    int c = pick_backup(cl, b);
    it_kill(cl, (unsigned)c, SIGKILL);
    it_wipe(cl, (unsigned)c);
    it_write_series(&w, &acks, "wiped", 0, 100, 10000);
    it_log("killed backup %s and deleted its data dir; 100 more writes", cl->r[c].id);
    catch_up(cl, &w, &acks, c, "wiped");

    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
