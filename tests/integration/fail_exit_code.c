/*
 * tests/integration/fail_exit_code.c — a replica asked to fail exits with
 * status 75 (docs/api.md: the supervisor or Docker's restart policy brings it
 * back) and, restarted with the same id, data dir and port, rejoins.
 *
 * First a backup is failed: writes keep committing on the other two, and the
 * restarted backup catches up. Then the primary is failed: a backup takes
 * over, and the old primary rejoins as a backup. Every acknowledged write is
 * in every replica's log exactly once at the end.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#define EXIT_FAILED 75

/* Send Fail to replica i and require it to exit with status 75. */
static void fail_replica(struct it_cluster *cl, unsigned i)
{
    struct client c;
    char err[256];
    IT_CHECK(client_connect(&c, cl->r[i].addr, "it-fail", 2000, err, sizeof(err)) == 0,
             "connect %s: %s", cl->r[i].id, err);
    IT_CHECK(client_send_fail(&c, "integration test") == 0, "send fail to %s", cl->r[i].id);
    int64_t t0 = it_now_ms();
    int st = it_wait_exit(cl, i, 10000);
    client_close(&c);
    IT_CHECK(st != -1, "%s still running 10 s after a fail request", cl->r[i].id);
    IT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == EXIT_FAILED,
             "%s: wait status 0x%x, want exit status %d", cl->r[i].id, st, EXIT_FAILED);
    it_log("%s exited with status %d %lld ms after the fail request", cl->r[i].id, EXIT_FAILED,
           (long long)(it_now_ms() - t0));
}

static void rejoin(struct it_cluster *cl, unsigned i)
{
    int64_t t0 = it_now_ms();
    it_start(cl, i);
    IT_WAIT_UNTIL(20000, "the failed replica to rejoin and catch up", it_is_caught_up(cl, i));
    struct it_status st;
    IT_CHECK(it_status(cl, i, &st) == 0, "status of %s", cl->r[i].id);
    it_log("%s rejoined as %s in epoch %llu, caught up in %lld ms", cl->r[i].id, st.role,
           (unsigned long long)st.epoch, (long long)(it_now_ms() - t0));
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "fail_exit_code");
    struct it_writer w;
    struct it_acks acks;
    struct it_cluster *cl = it_cluster_warm(3, &w, &acks, "before", 10);

    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    unsigned b = (unsigned)(pi + 1) % cl->n;
    fail_replica(cl, b);
    it_write_series(&w, &acks, "backup-down", 0, 10, 10000);
    struct it_status p2;
    IT_CHECK(it_wait_primary(cl, &p2) == pi && p2.epoch == p.epoch,
             "failing a backup moved the primary from %s/%llu to %s/%llu", p.id,
             (unsigned long long)p.epoch, p2.id, (unsigned long long)p2.epoch);
    rejoin(cl, b);

    fail_replica(cl, (unsigned)pi);
    it_write_series(&w, &acks, "primary-down", 0, 10, 10000);
    IT_CHECK(it_wait_primary(cl, &p2) != pi && p2.epoch > p.epoch,
             "after failing primary %s/%llu the primary is %s/%llu", p.id,
             (unsigned long long)p.epoch, p2.id, (unsigned long long)p2.epoch);
    rejoin(cl, (unsigned)pi);

    it_write_series(&w, &acks, "after", 0, 10, 10000);
    it_wait_caught_up(cl, 0, 10000);
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
