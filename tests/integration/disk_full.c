/*
 * tests/integration/disk_full.c — a replica whose disk fills up stops
 * writing but stays alive, and once space returns it resumes without losing
 * or duplicating anything (replica/node.c: sink_sync, disk_failed,
 * disk_retry_cb; replica/core/core.c: core_storage_failed).
 *
 * Each replica's data dir is on a small tmpfs of its own, mounted in the
 * test's private mount namespace (gone when the test exits), and log
 * segments are 64 KiB, so a new one is needed every few hundred writes: a
 * full disk shows when one is created. Two writer threads run throughout.
 * Scenario 1 fills a backup's tmpfs with a file until ENOSPC, scenario 2
 * the primary's. Each checks that the replica
 *  - reports it (Status.disk "full: ...", a disk_full event) with the same
 *    pid, steps down if it was primary, and takes no entries (its last
 *    index stays) while the other two elect a primary if needed and keep
 *    acknowledging writes;
 *  - acknowledges nothing sent to it directly;
 * then deletes the file and checks that it reports "ok" (and disk_ok),
 * reaches the primary's commit index, that every acknowledged write is in
 * every replica's committed log once, in order, and that no replica holds a
 * request it never answered (Status.pending_requests). Last, the replica is
 * restarted (SIGTERM) alone, the other two paused: what it recovers from its
 * own tmpfs must hold at least everything it had and agree with the
 * others; then with them back, the logs are compared again.
 *
 * Needs CAP_SYS_ADMIN for the mount namespace and the mounts: without it the
 * test says why and exits with IT_SKIP_CODE.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define N_REPLICAS    3
#define WRITERS       2
#define TMPFS_KIB     (8 * 1024)
#define SEGMENT_BYTES 65536
#define PACE_MS       2 /* between a writer's requests: keeps the tmpfs from filling by itself */
#define WRITE_MS      30000 /* a write not acknowledged by then fails the test */
#define WHILE_FULL    200   /* writes the other two must acknowledge while one is full */
#define FULL_MS       3500  /* and how long it stays full at least: a few retries (1/s) fail */
#define AFTER_OK      100   /* and once it is back */
#define MAX_MAYBE     8

/* ========================================================================
 * Writers
 * ====================================================================== */

struct load;

struct writer_arg {
    struct load *load;
    int k;
};

struct load {
    struct it_cluster *cl;
    struct it_acks *acks;
    char prefix[16];
    atomic_bool stop;
    pthread_t th[WRITERS];
    struct writer_arg args[WRITERS];
    size_t first; /* acks->n when they started */
};

static void *writer_main(void *p)
{
    struct writer_arg *arg = p;
    struct load *l = arg->load;
    struct it_writer w;
    it_writer_init(&w, l->cl, arg->k);
    /* A full primary no longer answers requests it had taken; do not let
     * one call hold a writer long before it tries elsewhere (same id). */
    w.call_timeout_ms = 1000;
    for (unsigned n = 0; !atomic_load(&l->stop); n++) {
        char id[IT_CLIENT_ID], data[64];
        snprintf(id, sizeof(id), "%s-w%d-%05u", l->prefix, arg->k, n);
        snprintf(data, sizeof(data), "%s writer %d request %u", l->prefix, arg->k, n);
        struct it_ack ack;
        it_write_ok(&w, id, data, WRITE_MS, &ack);
        it_acks_add(l->acks, &ack);
        it_sleep_ms(PACE_MS);
    }
    it_writer_close(&w);
    return NULL;
}

static size_t acks_count(struct it_acks *acks)
{
    pthread_mutex_lock(&acks->lock);
    size_t n = acks->n;
    pthread_mutex_unlock(&acks->lock);
    return n;
}

static void load_start(struct load *l, struct it_cluster *cl, struct it_acks *acks,
                       const char *prefix)
{
    memset(l, 0, sizeof(*l));
    l->cl = cl;
    l->acks = acks;
    snprintf(l->prefix, sizeof(l->prefix), "%s", prefix);
    atomic_store(&l->stop, false);
    l->first = acks_count(acks);
    for (int k = 0; k < WRITERS; k++) {
        l->args[k] = (struct writer_arg){l, k};
        IT_CHECK(pthread_create(&l->th[k], NULL, writer_main, &l->args[k]) == 0, "pthread_create");
    }
}

/* Acks since `from` that a primary other than `not_id` gave. */
static size_t acks_by_others(struct it_acks *acks, size_t from, const char *not_id)
{
    size_t n = 0;
    pthread_mutex_lock(&acks->lock);
    for (size_t k = from; k < acks->n; k++) {
        n += strcmp(acks->a[k].primary, not_id) != 0;
    }
    pthread_mutex_unlock(&acks->lock);
    return n;
}

static void load_stop(struct load *l)
{
    atomic_store(&l->stop, true);
    for (int k = 0; k < WRITERS; k++) {
        pthread_join(l->th[k], NULL);
    }
    int64_t worst = 0;
    size_t n = acks_count(l->acks);
    for (size_t k = l->first; k < n; k++) {
        if (l->acks->a[k].latency_ms > worst) {
            worst = l->acks->a[k].latency_ms;
        }
    }
    it_log("writers %s stopped: %zu writes acknowledged, the slowest in %lld ms", l->prefix,
           n - l->first, (long long)worst);
}

/* ========================================================================
 * Watching one replica's events
 * ====================================================================== */

struct watch {
    const struct it_cluster *cl;
    unsigned i;
    struct client c;
    pthread_t th;
    atomic_bool stop;
    _Atomic int64_t full_ms; /* when disk_full arrived, 0 before */
    _Atomic int64_t ok_ms;   /* when disk_ok arrived after it */
    char full_detail[256];
};

static void *watch_main(void *p)
{
    struct watch *wt = p;
    char err[256];
    while (!atomic_load(&wt->stop)) {
        Envelope *env = client_recv(&wt->c, 200, err, sizeof(err));
        if (env == NULL) {
            if (strncmp(err, "timed out", 9) == 0) {
                continue;
            }
            break; /* the connection is gone: nothing more to see */
        }
        if (env->body_case == REPLICACAO__ENVELOPE__BODY_EVENT) {
            const Replicacao__Event *e = env->event;
            if (strcmp(e->type, "disk_full") == 0 && atomic_load(&wt->full_ms) == 0) {
                snprintf(wt->full_detail, sizeof(wt->full_detail), "%s", e->detail);
                atomic_store(&wt->full_ms, it_now_ms());
            } else if (strcmp(e->type, "disk_ok") == 0 && atomic_load(&wt->full_ms) != 0) {
                atomic_store(&wt->ok_ms, it_now_ms());
            }
        }
        wire_free(env);
    }
    return NULL;
}

/* Subscribe to replica i's events. A status call on the same connection
 * returns once the Subscribe before it was handled. */
static void watch_start(struct watch *wt, const struct it_cluster *cl, unsigned i)
{
    memset(wt, 0, sizeof(*wt));
    wt->cl = cl;
    wt->i = i;
    char err[256];
    IT_CHECK(client_connect(&wt->c, cl->r[i].addr, "it-watch", 2000, err, sizeof(err)) == 0,
             "connect to %s: %s", cl->r[i].id, err);
    IT_CHECK(client_subscribe(&wt->c) == 0, "subscribe to %s", cl->r[i].id);
    Envelope *r = client_call_status(&wt->c, 5000, err, sizeof(err));
    IT_CHECK(r != NULL, "status of %s after subscribing: %s", cl->r[i].id, err);
    wire_free(r);
    IT_CHECK(pthread_create(&wt->th, NULL, watch_main, wt) == 0, "pthread_create");
}

static void watch_stop(struct watch *wt)
{
    atomic_store(&wt->stop, true);
    pthread_join(wt->th, NULL);
    client_close(&wt->c);
}

/* ========================================================================
 * The disk
 * ====================================================================== */

static bool disk_is(const struct it_cluster *cl, unsigned i, const char *prefix,
                    struct it_status *st)
{
    return it_status(cl, i, st) == 0 && strncmp(st->disk, prefix, strlen(prefix)) == 0;
}

/* Replica i's status; one call may time out on a loaded machine. */
static void status_of(const struct it_cluster *cl, unsigned i, struct it_status *st)
{
    char desc[IT_ID_MAX + 32];
    snprintf(desc, sizeof(desc), "a status answer from %s", cl->r[i].id);
    IT_WAIT_UNTIL(10000, desc, it_status(cl, i, st) == 0);
}

static unsigned long long free_bytes(const char *dir)
{
    struct statvfs sv;
    return statvfs(dir, &sv) == 0 ? (unsigned long long)sv.f_bavail * sv.f_frsize : 0;
}

/* Write `path` until the filesystem has no room left: its size. */
static unsigned long long fill(const char *path)
{
    static char buf[65536];
    memset(buf, 'f', sizeof(buf));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    IT_CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = write(fd, buf, sizeof(buf));
        if (n > 0) {
            total += (unsigned long long)n;
            continue;
        }
        IT_CHECK(n < 0 && errno == ENOSPC, "writing %s: %s", path,
                 n < 0 ? strerror(errno) : "wrote nothing");
        break;
    }
    close(fd);
    return total;
}

/* ========================================================================
 * One scenario
 * ====================================================================== */

static const char *maybe[MAX_MAYBE]; /* sent, outcome unknown */
static char maybe_ids[MAX_MAYBE][IT_CLIENT_ID];
static size_t n_maybe;

static int other_than(const struct it_cluster *cl, unsigned v)
{
    for (unsigned i = 0; i < cl->n; i++) {
        if (i != v && it_up(cl, i)) {
            return (int)i;
        }
    }
    IT_FAIL("no replica up besides %s", cl->r[v].id);
}

/* A request sent straight to the full replica must not be acknowledged.
 * NOT_PRIMARY means it was not taken, so it must never be committed; no
 * answer or UNKNOWN leaves it unknown. */
static void direct_write(const struct it_cluster *cl, unsigned v, const char *id)
{
    struct client c;
    char err[256];
    IT_CHECK(client_connect(&c, cl->r[v].addr, "it-direct", 2000, err, sizeof(err)) == 0,
             "connect to %s: %s", cl->r[v].id, err);
    Envelope *r = client_call_request(&c, id, "sent to a full disk", 19, 3000, err, sizeof(err));
    client_close(&c);
    const Replicacao__ClientReply *rep = r ? r->client_reply : NULL;
    IT_CHECK(rep == NULL || rep->status != REPLICACAO__CLIENT_REPLY__STATUS__OK,
             "%s acknowledged %s at index %llu with a full disk", cl->r[v].id, id,
             (unsigned long long)rep->index);
    if (rep == NULL || rep->status != REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY) {
        IT_CHECK(n_maybe < MAX_MAYBE, "too many unknown outcomes");
        snprintf(maybe_ids[n_maybe], IT_CLIENT_ID, "%s", id);
        maybe[n_maybe] = maybe_ids[n_maybe];
        n_maybe++;
    }
    if (rep == NULL) {
        it_log("a write sent to %s directly: no answer (%s)", cl->r[v].id, err);
    } else {
        it_log("a write sent to %s directly: status %d, primary '%s', message '%s'", cl->r[v].id,
               (int)rep->status, rep->primary, rep->message);
        wire_free(r);
    }
}

/* Every request a replica took has been answered (Status.pending_requests
 * is 0 everywhere): once the writers stopped, none may be left waiting,
 * whatever a full disk did to the update that carried its reply. */
static bool none_pending(const struct it_cluster *cl)
{
    for (unsigned i = 0; i < cl->n; i++) {
        struct it_status st;
        if (it_status(cl, i, &st) != 0) {
            return false;
        }
        if (st.pending_requests != 0) {
            static int64_t said;
            if (it_now_ms() - said > 2000) {
                it_log("%s: %llu request(s) still waiting for an answer", cl->r[i].id,
                       (unsigned long long)st.pending_requests);
                said = it_now_ms();
            }
            return false;
        }
    }
    return true;
}

/* Restart v alone (the others paused, so nothing can reach it from them):
 * its recovered log must hold at least what it had, and what it reports
 * committed must agree with the others'. Then with the others back, every
 * log is compared again. */
static void restart_alone(struct it_cluster *cl, struct it_acks *acks, unsigned v)
{
    unsigned o = (unsigned)other_than(cl, v);
    struct it_log ref, got;
    struct it_status before, after;
    it_read_log(cl, o, 0, &ref);
    status_of(cl, v, &before);
    for (unsigned i = 0; i < cl->n; i++) {
        if (i != v) {
            it_pause(cl, i);
        }
    }
    pid_t old = cl->r[v].pid;
    it_kill(cl, v, SIGTERM);
    it_start(cl, v);
    IT_WAIT_UNTIL(30000, "the restarted replica to answer", it_status(cl, v, &after) == 0);
    IT_CHECK(after.last_index >= before.last_index,
             "%s had last index %llu before the restart, %llu after", cl->r[v].id,
             (unsigned long long)before.last_index, (unsigned long long)after.last_index);
    IT_CHECK(strcmp(after.disk, "ok") == 0, "%s after the restart: disk '%s'", cl->r[v].id,
             after.disk);
    it_read_log(cl, v, 0, &got);
    it_check_prefix(&ref, cl->r[o].id, &got, cl->r[v].id);
    it_log("%s restarted alone (pid %d, was %d): last index %llu (had %llu), %zu committed "
           "entries agree with %s's %zu",
           cl->r[v].id, (int)cl->r[v].pid, (int)old, (unsigned long long)after.last_index,
           (unsigned long long)before.last_index, got.n, cl->r[o].id, ref.n);
    it_log_free(&ref);
    it_log_free(&got);
    for (unsigned i = 0; i < cl->n; i++) {
        if (i != v) {
            it_resume(cl, i);
        }
    }
    it_wait_caught_up(cl, 0, 30000);
    it_check_logs(cl, acks, maybe, n_maybe);
}

static void disk_full(struct it_cluster *cl, struct it_acks *acks, unsigned v, const char *name)
{
    const char *vid = cl->r[v].id;
    struct it_status st, p;
    struct load l;
    struct watch wt;
    char desc[160];

    it_log("---- %s: filling %s's disk", name, vid);
    watch_start(&wt, cl, v);
    load_start(&l, cl, acks, name);
    IT_WAIT_UNTIL(30000, "the writers to get going", acks_count(acks) >= l.first + 100);
    status_of(cl, v, &st);
    IT_CHECK(strcmp(st.disk, "ok") == 0, "%s: disk '%s' before filling", vid, st.disk);
    bool was_primary = strcmp(st.role, "primary") == 0;
    pid_t pid = cl->r[v].pid;

    char filler[600];
    snprintf(filler, sizeof(filler), "%s/filler", cl->r[v].mount);
    int64_t t_fill = it_now_ms();
    size_t acks_at_fill = acks_count(acks);
    unsigned long long filled = fill(filler);
    it_log("%s (%s, epoch %llu, last index %llu): wrote %llu bytes to %s, %llu bytes free", vid,
           st.role, (unsigned long long)st.epoch, (unsigned long long)st.last_index, filled, filler,
           free_bytes(cl->r[v].mount));

    snprintf(desc, sizeof(desc), "%s to report a full disk", vid);
    IT_WAIT_UNTIL(60000, desc, disk_is(cl, v, "full", &st));
    int64_t t_full = it_now_ms();
    it_log("%s reports disk '%s' %lld ms after the fill (%zu writes acknowledged in between); "
           "role %s, last index %llu",
           vid, st.disk, (long long)(t_full - t_fill), acks_count(acks) - acks_at_fill, st.role,
           (unsigned long long)st.last_index);
    IT_CHECK(strcmp(st.role, "primary") != 0, "%s is still primary with a full disk", vid);
    IT_CHECK(cl->r[v].pid == pid && kill(pid, 0) == 0, "%s is not the same process", vid);
    IT_WAIT_UNTIL(10000, "the disk_full event", atomic_load(&wt.full_ms) != 0);
    it_log("event disk_full from %s: %s", vid, wt.full_detail);

    int pi = -1;
    snprintf(desc, sizeof(desc), "a primary other than %s", vid);
    IT_WAIT_UNTIL(30000, desc, (pi = it_primary_now(cl, &p)) >= 0 && (unsigned)pi != v);
    if (was_primary) {
        it_log("failover: %s is primary (epoch %llu) %lld ms after %s reported full, %lld ms "
               "after the fill",
               cl->r[pi].id, (unsigned long long)p.epoch, (long long)(it_now_ms() - t_full), vid,
               (long long)(it_now_ms() - t_fill));
    }

    /* The others go on without it; it takes nothing meanwhile, however
     * often it tries to write again. */
    size_t mark = acks_count(acks);
    snprintf(desc, sizeof(desc), "%d writes acknowledged without %s", WHILE_FULL, vid);
    IT_WAIT_UNTIL(60000, desc,
                  acks_by_others(acks, mark, vid) >= WHILE_FULL && it_now_ms() - t_full >= FULL_MS);
    struct it_status still;
    status_of(cl, v, &still);
    IT_CHECK(strncmp(still.disk, "full", 4) == 0, "%s: disk '%s' with the filler in place", vid,
             still.disk);
    IT_CHECK(still.last_index == st.last_index,
             "%s took entries with a full disk: last index %llu, then %llu", vid,
             (unsigned long long)st.last_index, (unsigned long long)still.last_index);
    IT_CHECK(strcmp(still.role, "primary") != 0, "%s became primary with a full disk", vid);
    char id[IT_CLIENT_ID];
    snprintf(id, sizeof(id), "%s-direct", name);
    direct_write(cl, v, id);
    IT_CHECK(cl->r[v].pid == pid && kill(pid, 0) == 0, "%s is not the same process", vid);
    it_log("%s stayed at last index %llu for %lld ms while the others acknowledged %zu writes", vid,
           (unsigned long long)still.last_index, (long long)(it_now_ms() - t_full),
           acks_count(acks) - mark);

    /* Space returns. */
    IT_CHECK(unlink(filler) == 0, "unlink %s: %s", filler, strerror(errno));
    int64_t t_free = it_now_ms();
    snprintf(desc, sizeof(desc), "%s to report its disk ok", vid);
    IT_WAIT_UNTIL(30000, desc, disk_is(cl, v, "ok", &st));
    it_log("%s reports disk ok %lld ms after the filler went", vid,
           (long long)(it_now_ms() - t_free));
    IT_WAIT_UNTIL(10000, "the disk_ok event", atomic_load(&wt.ok_ms) != 0);
    IT_WAIT_UNTIL(30000, "a primary", (pi = it_primary_now(cl, &p)) >= 0);
    snprintf(desc, sizeof(desc), "%s to reach the primary's commit index %llu", vid,
             (unsigned long long)p.commit_index);
    IT_WAIT_UNTIL(60000, desc, it_status(cl, v, &st) == 0 && st.commit_index >= p.commit_index);
    it_log("%s reached commit index %llu (%s's) %lld ms after the filler went", vid,
           (unsigned long long)p.commit_index, cl->r[pi].id, (long long)(it_now_ms() - t_free));
    mark = acks_count(acks);
    IT_WAIT_UNTIL(30000, "more writes once it is back", acks_count(acks) >= mark + AFTER_OK);
    IT_CHECK(cl->r[v].pid == pid, "%s is not the same process", vid);

    load_stop(&l);
    watch_stop(&wt);
    it_wait_caught_up(cl, 0, 30000);
    it_check_logs(cl, acks, maybe, n_maybe);
    IT_WAIT_UNTIL(10000, "every request answered", none_pending(cl));
    restart_alone(cl, acks, v);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "disk_full");
    char why[512];
    if (it_private_mounts(why, sizeof(why)) != 0) {
        it_skip("cannot make a private mount namespace for the tmpfs data dirs: %s", why);
    }
    struct it_cluster *cl = it_cluster_new(N_REPLICAS);
    cl->segment_bytes = SEGMENT_BYTES;
    for (unsigned i = 0; i < cl->n; i++) {
        if (it_mount_tmpfs(cl, i, TMPFS_KIB, why, sizeof(why)) != 0) {
            it_skip("cannot mount a tmpfs: %s", why);
        }
    }
    struct it_acks acks;
    it_acks_init(&acks);
    it_start_all(cl);
    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    it_wait_caught_up(cl, 0, 10000);

    disk_full(cl, &acks, (unsigned)(pi + 1) % cl->n, "backup");
    pi = it_wait_primary(cl, &p);
    disk_full(cl, &acks, (unsigned)pi, "primary");

    it_check_logs(cl, &acks, maybe, n_maybe);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
