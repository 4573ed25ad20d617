/*
 * tests/integration/membership.c — the configuration changing under real
 * processes, with writes going on throughout:
 *   1. r1..r3 bootstrap knowing only each other; r4 starts later with all
 *      four addresses: the others learn its address from its Hello, it
 *      joins as a learner and is promoted to voter;
 *   2. a backup is removed on request (RemoveMember to the primary): it
 *      leaves the configuration, learns it and reports role "removed";
 *   3. the primary removes itself: it hands over (TimeoutNow) and a write
 *      commits on the successor; the time from the removal to that write
 *      is printed;
 *   4. a replica of another cluster (r5 bootstrapped alone, then pointed
 *      at this cluster) is refused: it never joins, and keeps its own log;
 *   5. every acknowledged write is in every remaining member's log once.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* The configuration replica i holds, from its status: "v r1,v r2,l r4" and
 * its role. 0, or -1 when it does not answer. */
static int config_of(const struct it_cluster *cl, unsigned i, char *text, size_t cap, char *role,
                     size_t role_cap, char *cluster_id, size_t id_cap)
{
    struct client c;
    char err[160];
    if (client_connect(&c, cl->r[i].addr, "it-membership", 2000, err, sizeof(err)) != 0) {
        return -1;
    }
    Envelope *env = client_call_status(&c, 2000, err, sizeof(err));
    client_close(&c);
    if (env == NULL) {
        return -1;
    }
    size_t used = 0;
    text[0] = '\0';
    for (size_t k = 0; k < env->status->n_members; k++) {
        const Replicacao__Member *m = env->status->members[k];
        used += (size_t)snprintf(text + used, cap > used ? cap - used : 0, "%s%c %s", k ? "," : "",
                                 m->voter ? 'v' : 'l', m->id);
    }
    snprintf(role, role_cap, "%s", env->status->role);
    snprintf(cluster_id, id_cap, "%s", env->status->cluster_id);
    wire_free(env);
    return 0;
}

/* Whether the primary's configuration is exactly `want`. */
static bool primary_config_is(const struct it_cluster *cl, const char *want)
{
    struct it_status p;
    int pi = it_primary_now(cl, &p);
    char text[512], role[16], cid[64];
    return pi >= 0 &&
           config_of(cl, (unsigned)pi, text, sizeof(text), role, sizeof(role), cid, sizeof(cid)) ==
               0 &&
           strcmp(text, want) == 0;
}

static bool role_is(const struct it_cluster *cl, unsigned i, const char *want)
{
    char text[512], role[16], cid[64];
    return config_of(cl, i, text, sizeof(text), role, sizeof(role), cid, sizeof(cid)) == 0 &&
           strcmp(role, want) == 0;
}

/* RemoveMember to the current primary; the reply's status. */
static int remove_member(const struct it_cluster *cl, const char *id, uint64_t *index)
{
    struct it_status p;
    int pi = it_primary_now(cl, &p);
    IT_CHECK(pi >= 0, "no primary to remove %s", id);
    struct client c;
    char err[160];
    IT_CHECK(client_connect(&c, cl->r[pi].addr, "it-membership", 2000, err, sizeof(err)) == 0,
             "connect to %s: %s", p.id, err);
    Envelope *env = client_call_remove_member(&c, id, 5000, err, sizeof(err));
    client_close(&c);
    IT_CHECK(env != NULL, "RemoveMember %s: %s", id, err);
    int st = (int)env->client_reply->status;
    *index = env->client_reply->index;
    it_log("RemoveMember %s at %s: status %d index %llu %s", id, p.id, st,
           (unsigned long long)*index, env->client_reply->message);
    wire_free(env);
    return st;
}

/* Only replicas 0..n-1 in the --peers list of the next start. */
static void peers_of_first(struct it_cluster *cl, unsigned n)
{
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        off += (size_t)snprintf(cl->peers + off, sizeof(cl->peers) - off, "%s%s", i ? "," : "",
                                cl->r[i].addr);
    }
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "membership");
    struct it_cluster *cl = it_cluster_new(5);
    cl->initial_size = 3;
    struct it_writer w;
    struct it_acks acks;
    it_acks_init(&acks);

    /* 1. Three bootstrap; r4 comes later, and only it knows every address. */
    peers_of_first(cl, 3);
    for (unsigned i = 0; i < 3; i++) {
        it_start(cl, i);
    }
    it_writer_init(&w, cl, 0);
    it_write_series(&w, &acks, "three", 0, 20, 30000);
    peers_of_first(cl, 4);
    int64_t t_join = it_now_ms();
    it_start(cl, 3);
    IT_WAIT_UNTIL(20000, "r4 to be a voter in the primary's configuration",
                  primary_config_is(cl, "v r1,v r2,v r3,v r4"));
    it_log("r4 joined and was promoted %lld ms after it started",
           (long long)(it_now_ms() - t_join));
    it_write_series(&w, &acks, "four", 0, 20, 10000);
    it_wait_caught_up(cl, 0, 10000);

    /* 2. Remove a backup on request. */
    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    unsigned victim = (unsigned)(pi == 0 ? 1 : 0);
    uint64_t index = 0;
    IT_CHECK(remove_member(cl, cl->r[victim].id, &index) == REPLICACAO__CLIENT_REPLY__STATUS__OK,
             "removing backup %s refused", cl->r[victim].id);
    char want[128] = "";
    for (unsigned i = 0, used = 0; i < 4; i++) {
        if (i != victim) {
            used += (unsigned)snprintf(want + used, sizeof(want) - used, "%sv %s", used ? "," : "",
                                       cl->r[i].id);
        }
    }
    IT_WAIT_UNTIL(10000, "the backup's removal", primary_config_is(cl, want));
    IT_WAIT_UNTIL(10000, "the removed backup to know it", role_is(cl, victim, "removed"));
    /* Asking again: it is no member any more. */
    IT_CHECK(remove_member(cl, cl->r[victim].id, &index) ==
                 REPLICACAO__CLIENT_REPLY__STATUS__NOT_FOUND,
             "a second removal of %s was not refused as unknown", cl->r[victim].id);
    it_kill(cl, victim, SIGTERM);
    it_write_series(&w, &acks, "after-backup", 0, 20, 10000);

    /* 3. The primary removes itself and hands over. */
    pi = it_wait_primary(cl, &p);
    uint64_t old_epoch = p.epoch;
    int64_t t_remove = it_now_ms();
    IT_CHECK(remove_member(cl, p.id, &index) == REPLICACAO__CLIENT_REPLY__STATUS__OK,
             "the primary %s refused to remove itself", p.id);
    struct it_ack ack;
    it_write_ok(&w, "after-handover-0", "first write after the handover", 10000, &ack);
    it_acks_add(&acks, &ack);
    it_log("handover: %s removed itself; the next write committed %lld ms later by %s in "
           "epoch %llu",
           p.id, (long long)(it_now_ms() - t_remove), ack.primary, (unsigned long long)ack.epoch);
    IT_CHECK(strcmp(ack.primary, p.id) != 0 && ack.epoch > old_epoch,
             "write after the handover acknowledged by %s in epoch %llu", ack.primary,
             (unsigned long long)ack.epoch);
    IT_WAIT_UNTIL(10000, "the old primary to report role removed",
                  role_is(cl, (unsigned)pi, "removed"));
    it_kill(cl, (unsigned)pi, SIGTERM);
    it_write_series(&w, &acks, "two", 0, 20, 10000);

    /* 4. A replica of another cluster: r5 bootstraps alone, then is
     * restarted with this cluster's addresses. It must stay out. */
    char ours[512], role[16], our_cluster[64];
    struct it_status q;
    int qi = it_wait_primary(cl, &q);
    IT_CHECK(config_of(cl, (unsigned)qi, ours, sizeof(ours), role, sizeof(role), our_cluster,
                       sizeof(our_cluster)) == 0,
             "no status from the primary");
    IT_CHECK(our_cluster[0] != '\0', "the cluster has no id");
    cl->initial_size = 1;
    peers_of_first(cl, 0);
    snprintf(cl->peers, sizeof(cl->peers), "%s", cl->r[4].addr);
    it_start(cl, 4);
    char text[512], their_cluster[64];
    IT_WAIT_UNTIL(10000, "r5 to be primary of its own cluster", role_is(cl, 4, "primary"));
    IT_CHECK(config_of(cl, 4, text, sizeof(text), role, sizeof(role), their_cluster,
                       sizeof(their_cluster)) == 0 &&
                 strcmp(their_cluster, our_cluster) != 0,
             "r5's cluster %s is not a new one (ours %s)", their_cluster, our_cluster);
    it_kill(cl, 4, SIGTERM);
    peers_of_first(cl, 5);
    it_start(cl, 4);
    IT_WAIT_UNTIL(10000, "r5 to be primary of its own cluster again", role_is(cl, 4, "primary"));
    it_write_series(&w, &acks, "foreign", 0, 20, 10000);
    /* However long we look, the configuration stays ours (2 s: several
     * rounds of dialling and the primary's membership checks). */
    int64_t until = it_now_ms() + 2000;
    while (it_now_ms() < until) {
        IT_CHECK(primary_config_is(cl, ours), "the configuration changed with r5 around");
        IT_CHECK(role_is(cl, 4, "primary"), "r5 left its own cluster");
        it_sleep_ms(100);
    }
    it_kill(cl, 4, SIGTERM);

    /* 5. The remaining members hold everything acknowledged, once. */
    it_wait_caught_up(cl, 0, 10000);
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
