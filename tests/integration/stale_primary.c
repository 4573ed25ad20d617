/*
 * tests/integration/stale_primary.c — a primary frozen with SIGSTOP for
 * longer than the election timeout comes back believing it still leads.
 *
 * While it is stopped, the other two elect a primary in a higher epoch and
 * commit writes. Still while it is stopped, a client connects to it (the
 * kernel accepts) and queues a request, which the old primary reads the
 * moment SIGCONT resumes it. It must not acknowledge that request in its
 * old epoch (guarantee 1: at most one primary per epoch; its check-quorum
 * has expired): the reply must be NOT_PRIMARY or UNKNOWN, or an OK only in
 * an epoch >= the new one and for an entry that really is in the new
 * primary's committed log. It must step down to a backup in the new epoch
 * within a few seconds and catch up; the request, retried with the same
 * id, is then applied exactly once.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAUSE_MS   1500 /* > the 600 ms maximum election timeout */
#define STALE_ID   "stale-request"
#define STALE_DATA "sent to the frozen primary"

/* Queue a Hello and a ClientRequest on a raw connection to a stopped
 * replica; the kernel holds them until the process runs again. */
static void queue_request(int fd)
{
    Envelope env;
    Replicacao__Hello hello = REPLICACAO__HELLO__INIT;
    wire_init(&env, "it-stale-client", 0);
    hello.name = "it-stale-client";
    hello.kind = REPLICACAO__HELLO__KIND__CLIENT;
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    IT_CHECK(it_raw_send_env(fd, &env) == 0, "send hello");
    Replicacao__ClientRequest req = REPLICACAO__CLIENT_REQUEST__INIT;
    wire_init(&env, "it-stale-client", 0);
    req.call_id = 1;
    req.client_id = STALE_ID;
    req.data.data = (uint8_t *)STALE_DATA;
    req.data.len = strlen(STALE_DATA);
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &req;
    IT_CHECK(it_raw_send_env(fd, &env) == 0, "send request");
}

/* The old primary's answer to the queued request (NULL: closed). */
static Envelope *await_reply(struct client *c)
{
    char err[256];
    int64_t deadline = it_now_ms() + 10000;
    while (it_now_ms() < deadline) {
        Envelope *r = client_recv(c, (int)(deadline - it_now_ms()), err, sizeof(err));
        if (r == NULL) {
            it_log("old primary's connection: %s", err);
            return NULL;
        }
        if (r->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY &&
            r->client_reply->call_id == 1) {
            return r;
        }
        wire_free(r); /* its Hello */
    }
    return NULL;
}

static const char *status_name(int s)
{
    static const char *names[] = {"OK", "NOT_PRIMARY", "UNKNOWN", "REJECTED"};
    return s >= 0 && s < 4 ? names[s] : "?";
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "stale_primary");
    struct it_writer w;
    struct it_acks acks;
    struct it_cluster *cl = it_cluster_warm(3, &w, &acks, "before", 10);

    struct it_status old;
    int oi = it_wait_primary(cl, &old);
    it_pause(cl, (unsigned)oi);
    int64_t stopped = it_now_ms();
    it_log("SIGSTOP primary %s (epoch %llu)", old.id, (unsigned long long)old.epoch);

    struct it_status np;
    int ni = -1;
    IT_WAIT_UNTIL(15000, "a new primary in a higher epoch",
                  (ni = it_primary_now(cl, &np)) >= 0 && np.epoch > old.epoch);
    it_log("%s elected in epoch %llu, %lld ms after the stop", np.id, (unsigned long long)np.epoch,
           (long long)(it_now_ms() - stopped));
    size_t from = acks.n;
    it_write_series(&w, &acks, "during", 0, 10, 10000);
    for (size_t k = from; k < acks.n; k++) {
        IT_CHECK(acks.a[k].epoch >= np.epoch && strcmp(acks.a[k].primary, old.id) != 0,
                 "%s acknowledged by %s in epoch %llu while %s was stopped", acks.a[k].client_id,
                 acks.a[k].primary, (unsigned long long)acks.a[k].epoch, old.id);
    }
    it_log("10 writes committed by %s while %s is stopped", np.id, old.id);
    while (it_now_ms() - stopped < PAUSE_MS) {
        it_sleep_ms(10); /* the scenario: frozen for longer than any timeout */
    }

    int fd = it_raw_connect(cl, (unsigned)oi);
    IT_CHECK(fd >= 0, "connect to the stopped %s", old.id);
    queue_request(fd);
    it_resume(cl, (unsigned)oi);
    int64_t resumed = it_now_ms();
    it_log("queued request %s on %s, SIGCONT after %lld ms stopped", STALE_ID, old.id,
           (long long)(resumed - stopped));

    struct client c;
    memset(&c, 0, sizeof(c));
    c.fd = fd;
    frame_reader_init(&c.reader, FRAME_DEFAULT_MAX);
    Envelope *r = await_reply(&c);
    IT_CHECK(r != NULL, "%s sent no reply to the queued request", old.id);
    const Replicacao__ClientReply *rep = r->client_reply;
    it_log("old primary answered %s: %s epoch=%llu index=%llu primary=%s (%s)", STALE_ID,
           status_name(rep->status), (unsigned long long)rep->epoch, (unsigned long long)rep->index,
           rep->primary, rep->message);
    bool stale_acked = rep->status == REPLICACAO__CLIENT_REPLY__STATUS__OK;
    struct it_ack stale = {.writer = 1};
    if (stale_acked) {
        /* Allowed only as a member of the new epoch; it_check_logs then
         * proves the entry is committed where the reply said. */
        IT_CHECK(rep->epoch >= np.epoch, "%s acknowledged %s in epoch %llu < the new epoch %llu",
                 old.id, STALE_ID, (unsigned long long)rep->epoch, (unsigned long long)np.epoch);
        snprintf(stale.client_id, sizeof(stale.client_id), "%s", STALE_ID);
        snprintf(stale.data, sizeof(stale.data), "%s", STALE_DATA);
        snprintf(stale.primary, sizeof(stale.primary), "%s", rep->primary);
        stale.index = rep->index;
        stale.epoch = rep->epoch;
        it_acks_add(&acks, &stale);
    } else {
        IT_CHECK(rep->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY ||
                     rep->status == REPLICACAO__CLIENT_REPLY__STATUS__UNKNOWN,
                 "unexpected status %d", rep->status);
    }
    wire_free(r);
    client_close(&c);

    struct it_status st;
    IT_WAIT_UNTIL(5000, "the old primary to step down to a backup in the new epoch",
                  it_status(cl, (unsigned)oi, &st) == 0 && strcmp(st.role, "backup") == 0 &&
                      st.epoch >= np.epoch);
    it_log("%s is a backup in epoch %llu %lld ms after SIGCONT", old.id,
           (unsigned long long)st.epoch, (long long)(it_now_ms() - resumed));
    IT_WAIT_UNTIL(15000, "the old primary to catch up", it_is_caught_up(cl, (unsigned)oi));
    it_log("%s caught up (commit index %llu)", old.id, (unsigned long long)st.commit_index);

    if (!stale_acked) {
        /* The client's retry, same id: applied once, wherever it lands. */
        it_write_series(&w, &acks, "after", 0, 5, 10000);
        struct it_ack a;
        it_write_ok(&w, STALE_ID, STALE_DATA, 10000, &a);
        it_acks_add(&acks, &a);
        it_log("retry of %s acknowledged by %s at index %llu (epoch %llu)", STALE_ID, a.primary,
               (unsigned long long)a.index, (unsigned long long)a.epoch);
    }
    it_write_series(&w, &acks, "after", 5, 5, 10000);
    it_wait_caught_up(cl, 0, 15000);
    const char *maybe[] = {STALE_ID};
    it_check_logs(cl, &acks, maybe, 1);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
