/*
 * bench/loadgen.c — load generator and measuring tool speaking the
 * replicacao protocol directly (no coordinator, no HTTP), built on the
 * blocking client in common/client.c.
 *
 *   loadgen write    -a ADDRS [-c CONNS] [-s BYTES] [-d SECONDS] [-n MAX] [-p DEPTH]
 *       CONNS threads, one connection each to the primary, DEPTH requests in
 *       flight per connection (1 = one request at a time, like one wrk
 *       connection). Every request has a unique client id. Runs for SECONDS
 *       or until MAX requests in all were committed. Prints one JSON line:
 *       ops, errors, ops_per_s, p50/p90/p99/max latency in ms.
 *   loadgen read     -a ADDRS [-C LEVEL] [-T TARGET] [-c CONNS] [-l LIMIT] [-i AFTER]
 *                    [-d SECONDS] [-n MAX]
 *       CONNS threads, one connection each, one ReadRequest in flight per
 *       connection, each a page of LIMIT (10) entries after AFTER (default:
 *       the primary's commit index at the start minus LIMIT: the most recent
 *       page, the same page for every read while nothing is written) at
 *       LEVEL linearizable (default) or serializable. TARGET: primary (the
 *       default for linearizable; NOT_PRIMARY answers are followed to the
 *       replica they name, counted as redirects), backup (the default for
 *       serializable: every thread on the same one backup, the first one in
 *       ADDRS that answers as not the primary), or spread (thread i on
 *       ADDRS[i mod n]). Prints one JSON line like write, plus the page, the
 *       entries per read, redirects and the servers that answered.
 *       One write to the primary, then SIGKILL of PID (the primary's process,
 *       known to the caller), then the same write retried across the
 *       replicas (following "not primary" hints, same client id) until one
 *       commits it. Prints the time from the kill to that commit.
 *   loadgen catchup  -a ADDR -i INDEX [-r] [-t TIMEOUT_MS] [-S START_MS]
 *       Polls ADDR (retrying the connection while it starts) every 2 ms until
 *       its last and commit index reach INDEX (with -r: and it is the primary
 *       or its status names one: caught up and serving). Prints the time
 *       elapsed since START_MS (CLOCK_MONOTONIC in ms, e.g. when the caller
 *       spawned the replica), or since its own start. A first line,
 *       {"listening_ms":...}, is printed (and flushed) as soon as the first
 *       status call answers, so a caller reading the pipe can look at the
 *       replica at that moment.
 *   loadgen status   -a ADDR
 *       One status call, as JSON (id, role, epoch, primary, indices).
 *
 * Exit status 0 on success, 1 on failure (a reason on stderr).
 */
#include "addr.h"
#include "client.h"
#include "peer_auth.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 2000
#define MAX_DEPTH          256

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms_since(int64_t t0)
{
    return (double)(now_ns() - t0) / 1e6;
}

struct opts {
    struct addr_list addrs;
    unsigned conns;
    size_t size;
    double duration_s;
    uint64_t max_ops;
    unsigned depth;
    int timeout_ms;
    pid_t kill_pid;
    uint64_t index;
    int64_t since_ns; /* catchup: count from this CLOCK_MONOTONIC time (-S ms) */
    bool serving;     /* catchup -r: also wait until a primary is known */
    bool after_given; /* read: -i AFTER */
    uint32_t limit;   /* read: page size */
    int consistency;  /* read: REPLICACAO__READ_REQUEST__CONSISTENCY__* */
    char target[16];  /* read: primary, backup, spread */
    char prefix[32];
};

/* ------------------------------------------------------------------------
 * Finding the primary
 * ---------------------------------------------------------------------- */

static void item_str(const struct addr_item *it, char *out, size_t n)
{
    snprintf(out, n, "%s:%s", it->host, it->port);
}

/* Ask every address; the one whose role is primary wins. A backup that
 * names the primary gives its address through the peer list. 0 or -1. */
static int find_primary(const struct addr_list *addrs, int timeout_ms, char *out, size_t n)
{
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    while (now_ns() < deadline) {
        for (unsigned i = 0; i < addrs->n; i++) {
            char a[300], err[256];
            item_str(&addrs->items[i], a, sizeof(a));
            struct client c;
            if (client_connect(&c, a, "loadgen", 500, err, sizeof(err)) != 0) {
                continue;
            }
            Envelope *r = client_call_status(&c, 1000, err, sizeof(err));
            client_close(&c);
            if (r == NULL) {
                continue;
            }
            Replicacao__Status *s = r->status;
            int found = 0;
            if (strcmp(s->role, "primary") == 0) {
                snprintf(out, n, "%s", a);
                found = 1;
            } else if (s->primary[0] != '\0') {
                for (size_t p = 0; p < s->n_peers; p++) {
                    if (strcmp(s->peers[p]->id, s->primary) == 0 && s->peers[p]->address[0]) {
                        snprintf(out, n, "%s", s->peers[p]->address);
                        found = 1;
                    }
                }
            }
            wire_free(r);
            if (found) {
                return 0;
            }
        }
        usleep(20000);
    }
    return -1;
}

static int send_request(struct client *c, uint64_t call_id, const char *client_id, const void *data,
                        size_t len)
{
    Envelope env;
    Replicacao__ClientRequest req = REPLICACAO__CLIENT_REQUEST__INIT;
    wire_init(&env, c->name, 0);
    req.call_id = call_id;
    req.client_id = (char *)client_id;
    req.data.data = (uint8_t *)data;
    req.data.len = len;
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &req;
    return client_send(c, &env);
}

/* ------------------------------------------------------------------------
 * write
 * ---------------------------------------------------------------------- */

struct worker {
    pthread_t th;
    unsigned no;
    const struct opts *o;
    char primary[300];
    uint32_t *lat_us; /* one per committed request */
    size_t n_lat, cap_lat;
    uint64_t errors;
    char last_err[640];
    /* read */
    char server[300]; /* where this thread reads */
    uint64_t entries, redirects;
};

static atomic_bool stop_flag;
static atomic_uint_fast64_t issued;
static int64_t run_deadline_ns;
static pthread_barrier_t start_barrier;

static void record(struct worker *w, int64_t lat_ns)
{
    if (w->n_lat == w->cap_lat) {
        size_t cap = w->cap_lat ? w->cap_lat * 2 : 65536;
        uint32_t *p = realloc(w->lat_us, cap * sizeof(*p));
        if (p == NULL) {
            return;
        }
        w->lat_us = p;
        w->cap_lat = cap;
    }
    int64_t us = lat_ns / 1000;
    w->lat_us[w->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static bool may_issue(const struct opts *o)
{
    if (atomic_load(&stop_flag) || now_ns() >= run_deadline_ns) {
        return false;
    }
    if (o->max_ops && atomic_fetch_add(&issued, 1) >= o->max_ops) {
        return false;
    }
    return true;
}

struct slot {
    bool busy;
    uint64_t call_id;
    int64_t sent_ns;
    char cid[64];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct opts *o = w->o;
    char *data = malloc(o->size ? o->size : 1);
    for (size_t i = 0; i < o->size; i++) {
        data[i] = (char)('a' + (i + w->no) % 26);
    }
    struct slot slots[MAX_DEPTH];
    uint64_t seq = 0, call = 1;
    struct client c;
    bool connected = false;
    char err[256];
    pthread_barrier_wait(&start_barrier);
    while (!atomic_load(&stop_flag) && now_ns() < run_deadline_ns) {
        if (!connected) {
            if (client_connect(&c, w->primary, "loadgen", CONNECT_TIMEOUT_MS, err, sizeof(err)) !=
                0) {
                w->errors++;
                snprintf(w->last_err, sizeof(w->last_err), "%s", err);
                usleep(50000);
                if (find_primary(&o->addrs, 2000, w->primary, sizeof(w->primary)) != 0) {
                    continue;
                }
                continue;
            }
            connected = true;
            memset(slots, 0, sizeof(slots));
        }
        /* Fill the window. */
        unsigned busy = 0;
        bool failed = false;
        for (unsigned i = 0; i < o->depth; i++) {
            if (!slots[i].busy && may_issue(o)) {
                struct slot *s = &slots[i];
                snprintf(s->cid, sizeof(s->cid), "%s-%u-%llu", o->prefix, w->no,
                         (unsigned long long)seq++);
                s->call_id = call++;
                s->sent_ns = now_ns();
                if (send_request(&c, s->call_id, s->cid, data, o->size) != 0) {
                    failed = true;
                    snprintf(w->last_err, sizeof(w->last_err), "send: %s", strerror(errno));
                    break;
                }
                s->busy = true;
            }
            busy += slots[i].busy;
        }
        if (!failed && busy == 0) {
            break; /* out of time or count, nothing in flight */
        }
        if (!failed) {
            Envelope *r = client_recv(&c, o->timeout_ms, err, sizeof(err));
            if (r == NULL) {
                failed = true;
                snprintf(w->last_err, sizeof(w->last_err), "%s", err);
            } else if (r->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY) {
                Replicacao__ClientReply *rep = r->client_reply;
                for (unsigned i = 0; i < o->depth; i++) {
                    if (slots[i].busy && slots[i].call_id == rep->call_id) {
                        slots[i].busy = false;
                        if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__OK) {
                            record(w, now_ns() - slots[i].sent_ns);
                        } else {
                            w->errors++;
                            snprintf(w->last_err, sizeof(w->last_err), "status %d: %s",
                                     (int)rep->status, rep->message);
                            if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY) {
                                failed = true;
                            }
                        }
                    }
                }
            } else if (r->body_case == REPLICACAO__ENVELOPE__BODY_ERROR) {
                failed = true;
                snprintf(w->last_err, sizeof(w->last_err), "error: %s", r->error->message);
            }
            wire_free(r);
        }
        if (failed) {
            for (unsigned i = 0; i < o->depth; i++) {
                w->errors += slots[i].busy;
            }
            client_close(&c);
            connected = false;
            find_primary(&o->addrs, 2000, w->primary, sizeof(w->primary));
        }
    }
    if (connected) {
        client_close(&c);
    }
    free(data);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n) {
        i = n - 1;
    }
    return v[i] / 1000.0;
}

/* Prints the JSON line of a run (`extra`: more "key":value, pairs, each
 * followed by a comma) and frees the workers' samples; 0 if anything
 * succeeded. */
static int report(const struct opts *o, struct worker *ws, double secs, const char *primary,
                  const char *extra)
{
    size_t total = 0;
    uint64_t errors = 0;
    for (unsigned i = 0; i < o->conns; i++) {
        total += ws[i].n_lat;
        errors += ws[i].errors;
    }
    uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    const char *last_err = "";
    for (unsigned i = 0; i < o->conns; i++) {
        memcpy(all + k, ws[i].lat_us, ws[i].n_lat * sizeof(*all));
        k += ws[i].n_lat;
        if (ws[i].last_err[0]) {
            last_err = ws[i].last_err;
        }
    }
    qsort(all, total, sizeof(*all), cmp_u32);
    double mean = 0;
    for (size_t i = 0; i < total; i++) {
        mean += all[i];
    }
    mean = total ? mean / (double)total / 1000.0 : 0;
    printf("{\"tool\":\"loadgen\",%s\"primary\":\"%s\",\"conns\":%u,\"depth\":%u,"
           "\"size\":%zu,\"ops\":%zu,\"errors\":%llu,\"seconds\":%.3f,\"ops_per_s\":%.1f,"
           "\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           extra, primary, o->conns, o->depth, o->size, total, (unsigned long long)errors, secs,
           secs > 0 ? (double)total / secs : 0, mean, pct_ms(all, total, 50),
           pct_ms(all, total, 90), pct_ms(all, total, 99), total ? all[total - 1] / 1000.0 : 0);
    if (errors) {
        fprintf(stderr, "loadgen: %llu errors, last: %s\n", (unsigned long long)errors, last_err);
    }
    for (unsigned i = 0; i < o->conns; i++) {
        free(ws[i].lat_us);
    }
    free(all);
    return total > 0 ? 0 : 1;
}

static int cmd_write(struct opts *o)
{
    char primary[300];
    if (find_primary(&o->addrs, 10000, primary, sizeof(primary)) != 0) {
        fprintf(stderr, "loadgen: no primary found\n");
        return 1;
    }
    struct worker *ws = calloc(o->conns, sizeof(*ws));
    pthread_barrier_init(&start_barrier, NULL, o->conns + 1);
    run_deadline_ns = INT64_MAX;
    for (unsigned i = 0; i < o->conns; i++) {
        ws[i].no = i;
        ws[i].o = o;
        snprintf(ws[i].primary, sizeof(ws[i].primary), "%s", primary);
        pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
    }
    int64_t t0 = now_ns();
    run_deadline_ns = t0 + (int64_t)(o->duration_s * 1e9);
    pthread_barrier_wait(&start_barrier);
    for (unsigned i = 0; i < o->conns; i++) {
        pthread_join(ws[i].th, NULL);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    int rc = report(o, ws, secs, primary, "");
    free(ws);
    return rc;
}

/* ------------------------------------------------------------------------
 * read
 * ---------------------------------------------------------------------- */

/* One status call: 0 with the role and commit index, or -1. */
static int status_of(const char *addr, char *role, size_t rolelen, uint64_t *commit)
{
    char err[256];
    struct client c;
    if (client_connect(&c, addr, "loadgen", 1000, err, sizeof(err)) != 0) {
        return -1;
    }
    Envelope *r = client_call_status(&c, 1000, err, sizeof(err));
    client_close(&c);
    if (r == NULL) {
        return -1;
    }
    snprintf(role, rolelen, "%s", r->status->role);
    *commit = r->status->commit_index;
    wire_free(r);
    return 0;
}

static uint64_t read_after; /* the page: entries with index > read_after */

static void *read_worker_main(void *arg)
{
    struct worker *w = arg;
    const struct opts *o = w->o;
    bool linearizable = o->consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE;
    struct client c;
    bool connected = false;
    char err[256];
    pthread_barrier_wait(&start_barrier);
    while (may_issue(o)) {
        if (!connected) {
            if (client_connect(&c, w->server, "loadgen", CONNECT_TIMEOUT_MS, err, sizeof(err)) !=
                0) {
                w->errors++;
                snprintf(w->last_err, sizeof(w->last_err), "%s: %s", w->server, err);
                usleep(50000);
                if (strcmp(o->target, "primary") == 0) {
                    find_primary(&o->addrs, 2000, w->server, sizeof(w->server));
                }
                continue;
            }
            connected = true;
        }
        int64_t t0 = now_ns();
        Envelope *r =
            client_call_read_at(&c, read_after, o->limit, REPLICACAO__READ_REQUEST__FILTER__ALL,
                                o->consistency, o->timeout_ms, err, sizeof(err));
        bool reconnect = false;
        if (r == NULL) {
            w->errors++;
            snprintf(w->last_err, sizeof(w->last_err), "%s: %s", w->server, err);
            reconnect = true;
        } else {
            Replicacao__ReadReply *rr = r->read_reply;
            if (rr->status == REPLICACAO__CLIENT_REPLY__STATUS__OK &&
                (int)rr->consistency == o->consistency) {
                record(w, now_ns() - t0);
                w->entries += rr->n_entries;
            } else if (rr->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY &&
                       linearizable && rr->primary_address[0] != '\0' &&
                       strcmp(rr->primary_address, w->server) != 0) {
                w->redirects++; /* follow the hint */
                snprintf(w->server, sizeof(w->server), "%s", rr->primary_address);
                client_close(&c);
                connected = false;
            } else {
                w->errors++;
                snprintf(w->last_err, sizeof(w->last_err), "%s: status %d consistency %d: %s",
                         w->server, (int)rr->status, (int)rr->consistency, rr->message);
                reconnect = true;
            }
            wire_free(r);
        }
        if (reconnect) {
            client_close(&c);
            connected = false;
            if (linearizable) {
                usleep(10000);
                find_primary(&o->addrs, 2000, w->server, sizeof(w->server));
            }
        }
    }
    if (connected) {
        client_close(&c);
    }
    return NULL;
}

static int cmd_read(struct opts *o)
{
    char primary[300], backup[300] = "", role[32];
    uint64_t commit = 0;
    if (find_primary(&o->addrs, 10000, primary, sizeof(primary)) != 0 ||
        status_of(primary, role, sizeof(role), &commit) != 0) {
        fprintf(stderr, "loadgen: no primary found\n");
        return 1;
    }
    if (strcmp(o->target, "backup") == 0) {
        for (unsigned i = 0; i < o->addrs.n && backup[0] == '\0'; i++) {
            char a[300];
            uint64_t ci;
            item_str(&o->addrs.items[i], a, sizeof(a));
            if (strcmp(a, primary) != 0 && status_of(a, role, sizeof(role), &ci) == 0 &&
                strcmp(role, "primary") != 0) {
                snprintf(backup, sizeof(backup), "%s", a);
            }
        }
        if (backup[0] == '\0') {
            fprintf(stderr, "loadgen: no backup answers among -a\n");
            return 1;
        }
    }
    read_after = o->after_given ? o->index : commit > o->limit ? commit - o->limit : 0;
    struct worker *ws = calloc(o->conns, sizeof(*ws));
    pthread_barrier_init(&start_barrier, NULL, o->conns + 1);
    run_deadline_ns = INT64_MAX;
    for (unsigned i = 0; i < o->conns; i++) {
        ws[i].no = i;
        ws[i].o = o;
        if (strcmp(o->target, "spread") == 0) {
            item_str(&o->addrs.items[i % o->addrs.n], ws[i].server, sizeof(ws[i].server));
        } else {
            snprintf(ws[i].server, sizeof(ws[i].server), "%s",
                     strcmp(o->target, "backup") == 0 ? backup : primary);
        }
        pthread_create(&ws[i].th, NULL, read_worker_main, &ws[i]);
    }
    int64_t t0 = now_ns();
    run_deadline_ns = t0 + (int64_t)(o->duration_s * 1e9);
    pthread_barrier_wait(&start_barrier);
    for (unsigned i = 0; i < o->conns; i++) {
        pthread_join(ws[i].th, NULL);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t entries = 0, redirects = 0;
    char servers[1024] = "";
    for (unsigned i = 0; i < o->conns; i++) {
        entries += ws[i].entries;
        redirects += ws[i].redirects;
        /* the distinct servers the threads ended on, comma-separated */
        size_t sl = strlen(ws[i].server);
        bool seen = false;
        for (const char *p = servers; (p = strstr(p, ws[i].server)) != NULL; p += sl) {
            if ((p == servers || p[-1] == ',') && (p[sl] == ',' || p[sl] == '\0')) {
                seen = true;
                break;
            }
        }
        if (!seen && strlen(servers) + sl + 2 < sizeof(servers)) {
            if (servers[0] != '\0') {
                strcat(servers, ",");
            }
            strcat(servers, ws[i].server);
        }
    }
    char extra[1400];
    snprintf(extra, sizeof(extra),
             "\"mode\":\"read\",\"consistency\":\"%s\",\"target\":\"%s\",\"servers\":\"%s\","
             "\"after\":%llu,\"limit\":%u,\"commit_index\":%llu,\"redirects\":%llu,"
             "\"entries\":%llu,",
             o->consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE ? "linearizable"
                                                                                   : "serializable",
             o->target, servers, (unsigned long long)read_after, o->limit,
             (unsigned long long)commit, (unsigned long long)redirects,
             (unsigned long long)entries);
    int rc = report(o, ws, secs, primary, extra);
    free(ws);
    return rc;
}

/* ------------------------------------------------------------------------
 * failover
 * ---------------------------------------------------------------------- */

/* One attempt of the request on addr; 1 committed, 0 not (hint filled if
 * the replica named a primary), -1 connection failed. */
static int try_once(const char *addr, const char *cid, int timeout_ms, char *hint, size_t hintlen,
                    uint64_t *epoch, char *who, size_t wholen, char *err, size_t errlen)
{
    struct client c;
    hint[0] = '\0';
    if (client_connect(&c, addr, "loadgen-failover", timeout_ms, err, errlen) != 0) {
        return -1;
    }
    Envelope *r = client_call_request(&c, cid, "failover-probe", 14, timeout_ms, err, errlen);
    client_close(&c);
    if (r == NULL) {
        return -1;
    }
    int rc = 0;
    Replicacao__ClientReply *rep = r->client_reply;
    if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__OK) {
        *epoch = rep->epoch;
        snprintf(who, wholen, "%s", rep->primary);
        rc = 1;
    } else if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY &&
               rep->primary_address[0] != '\0' && strcmp(rep->primary_address, addr) != 0) {
        snprintf(hint, hintlen, "%s", rep->primary_address);
    }
    snprintf(err, errlen, "status %d %s", (int)rep->status, rep->message);
    wire_free(r);
    return rc;
}

static int cmd_failover(struct opts *o)
{
    char primary[300], hint[300], who[128], err[256];
    uint64_t epoch0 = 0, epoch = 0;
    if (find_primary(&o->addrs, 10000, primary, sizeof(primary)) != 0) {
        fprintf(stderr, "loadgen: no primary found\n");
        return 1;
    }
    char cid[64];
    snprintf(cid, sizeof(cid), "%s-warm", o->prefix);
    if (try_once(primary, cid, 5000, hint, sizeof(hint), &epoch0, who, sizeof(who), err,
                 sizeof(err)) != 1) {
        fprintf(stderr, "loadgen: write before the kill failed: %s\n", err);
        return 1;
    }
    snprintf(cid, sizeof(cid), "%s-after", o->prefix);
    int64_t t0 = now_ns();
    if (kill(o->kill_pid, SIGKILL) != 0) {
        fprintf(stderr, "loadgen: kill %d: %s\n", (int)o->kill_pid, strerror(errno));
        return 1;
    }
    int64_t deadline = t0 + (int64_t)o->timeout_ms * 1000000;
    unsigned next = 0, attempts = 0;
    char target[300] = "";
    while (now_ns() < deadline) {
        if (target[0] == '\0') {
            item_str(&o->addrs.items[next++ % o->addrs.n], target, sizeof(target));
            if (o->addrs.n > 1 && strcmp(target, primary) == 0) {
                target[0] = '\0'; /* the one we killed (or its restarted self) */
                continue;
            }
        }
        attempts++;
        int rc = try_once(target, cid, 1000, hint, sizeof(hint), &epoch, who, sizeof(who), err,
                          sizeof(err));
        if (rc == 1) {
            double ms = ms_since(t0);
            printf("{\"failover_ms\":%.1f,\"old_primary\":\"%s\",\"new_primary\":\"%s\","
                   "\"epoch_before\":%llu,\"epoch\":%llu,\"attempts\":%u}\n",
                   ms, primary, who, (unsigned long long)epoch0, (unsigned long long)epoch,
                   attempts);
            return 0;
        }
        if (hint[0] != '\0') {
            snprintf(target, sizeof(target), "%s", hint);
        } else {
            target[0] = '\0';
            usleep(2000);
        }
    }
    fprintf(stderr, "loadgen: no commit within %d ms of the kill: %s\n", o->timeout_ms, err);
    return 1;
}

/* ------------------------------------------------------------------------
 * catchup, status
 * ---------------------------------------------------------------------- */

static int cmd_catchup(struct opts *o)
{
    char addr[300], err[256] = "";
    item_str(&o->addrs.items[0], addr, sizeof(addr));
    int64_t t0 = o->since_ns > 0 ? o->since_ns : now_ns();
    int64_t deadline = t0 + (int64_t)o->timeout_ms * 1000000;
    double listening_ms = -1, answered_ms = -1, primary_ms = -1;
    struct client c;
    bool connected = false;
    uint64_t last = 0, commit = 0;
    while (now_ns() < deadline) {
        if (!connected) {
            if (client_connect(&c, addr, "loadgen-catchup", 500, err, sizeof(err)) != 0) {
                usleep(2000);
                continue;
            }
            connected = true;
            if (listening_ms < 0) {
                listening_ms = ms_since(t0);
            }
        }
        Envelope *r = client_call_status(&c, 1000, err, sizeof(err));
        if (r == NULL) {
            client_close(&c);
            connected = false;
            continue;
        }
        last = r->status->last_index;
        commit = r->status->commit_index;
        bool has_primary = strcmp(r->status->role, "primary") == 0 || r->status->primary[0] != '\0';
        wire_free(r);
        if (answered_ms < 0) {
            answered_ms = ms_since(t0);
            printf("{\"listening_ms\":%.1f,\"answered_ms\":%.1f}\n", listening_ms, answered_ms);
            fflush(stdout);
        }
        if (has_primary && primary_ms < 0) {
            primary_ms = ms_since(t0);
        }
        if (last >= o->index && commit >= o->index && (has_primary || !o->serving)) {
            printf("{\"catchup_ms\":%.1f,\"listening_ms\":%.1f,\"answered_ms\":%.1f,"
                   "\"primary_ms\":%.1f,\"last_index\":%llu,\"commit_index\":%llu}\n",
                   ms_since(t0), listening_ms, answered_ms, primary_ms, (unsigned long long)last,
                   (unsigned long long)commit);
            client_close(&c);
            return 0;
        }
        usleep(2000);
    }
    if (connected) {
        client_close(&c);
    }
    fprintf(stderr,
            "loadgen: %s not caught up to %llu in %d ms (last %llu, commit %llu, primary %s) %s\n",
            addr, (unsigned long long)o->index, o->timeout_ms, (unsigned long long)last,
            (unsigned long long)commit, primary_ms < 0 ? "never known" : "known", err);
    return 1;
}

static int cmd_status(struct opts *o)
{
    char addr[300], err[256];
    item_str(&o->addrs.items[0], addr, sizeof(addr));
    struct client c;
    if (client_connect(&c, addr, "loadgen", o->timeout_ms, err, sizeof(err)) != 0) {
        fprintf(stderr, "loadgen: %s\n", err);
        return 1;
    }
    Envelope *r = client_call_status(&c, o->timeout_ms, err, sizeof(err));
    client_close(&c);
    if (r == NULL) {
        fprintf(stderr, "loadgen: status: %s\n", err);
        return 1;
    }
    Replicacao__Status *s = r->status;
    printf("{\"id\":\"%s\",\"role\":\"%s\",\"epoch\":%llu,\"primary\":\"%s\",\"last_index\":%llu,"
           "\"commit_index\":%llu}\n",
           s->id, s->role, (unsigned long long)s->epoch, s->primary,
           (unsigned long long)s->last_index, (unsigned long long)s->commit_index);
    wire_free(r);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loadgen write    -a ADDRS [-c CONNS] [-s BYTES] [-d SECONDS] [-n MAX] [-p "
            "DEPTH] [-t TIMEOUT_MS] [-P ID_PREFIX]\n"
            "       loadgen read     -a ADDRS [-C linearizable|serializable] [-T "
            "primary|backup|spread] [-c CONNS] [-l LIMIT] [-i AFTER] [-d SECONDS] [-n MAX] [-t "
            "TIMEOUT_MS]\n"
            "       loadgen failover -a ADDRS -k PRIMARY_PID [-t TIMEOUT_MS]\n"
            "       loadgen catchup  -a ADDR -i INDEX [-r] [-t TIMEOUT_MS] [-S "
            "START_MONOTONIC_MS]\n"
            "       loadgen status   -a ADDR\n"
            "every command: -K CLUSTER_SECRET_FILE proves the cluster's secret\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    struct opts o = {.conns = 1,
                     .size = 16,
                     .duration_s = 5,
                     .depth = 1,
                     .timeout_ms = 10000,
                     .limit = 10,
                     .consistency = REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE};
    snprintf(o.prefix, sizeof(o.prefix), "lg%d", (int)getpid());
    const char *addrs = NULL;
    int opt;
    optind = 2;
    static struct peer_auth auth; /* client_use_auth keeps a pointer */
    while ((opt = getopt(argc, argv, "a:c:s:d:n:p:t:k:i:P:S:C:T:l:rK:")) != -1) {
        switch (opt) {
        case 'a':
            addrs = optarg;
            break;
        case 'c':
            o.conns = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            o.size = strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o.duration_s = strtod(optarg, NULL);
            break;
        case 'n':
            o.max_ops = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            o.depth = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            o.timeout_ms = atoi(optarg);
            break;
        case 'k':
            o.kill_pid = (pid_t)atoi(optarg);
            break;
        case 'i':
            o.index = strtoull(optarg, NULL, 10);
            o.after_given = true;
            break;
        case 'l':
            o.limit = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'C':
            if (strcmp(optarg, "linearizable") == 0) {
                o.consistency = REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE;
            } else if (strcmp(optarg, "serializable") == 0) {
                o.consistency = REPLICACAO__READ_REQUEST__CONSISTENCY__SERIALIZABLE;
            } else {
                fprintf(stderr, "loadgen: -C is linearizable or serializable\n");
                return 2;
            }
            break;
        case 'T':
            if (strcmp(optarg, "primary") != 0 && strcmp(optarg, "backup") != 0 &&
                strcmp(optarg, "spread") != 0) {
                fprintf(stderr, "loadgen: -T is primary, backup or spread\n");
                return 2;
            }
            snprintf(o.target, sizeof(o.target), "%s", optarg);
            break;
        case 'S':
            o.since_ns = (int64_t)(strtod(optarg, NULL) * 1e6);
            break;
        case 'r':
            o.serving = true;
            break;
        case 'P':
            snprintf(o.prefix, sizeof(o.prefix), "%s", optarg);
            break;
        case 'K': {
            char why[256];
            if (peer_auth_load(&auth, optarg, why, sizeof(why)) != 0) {
                fprintf(stderr, "loadgen: %s\n", why);
                return 2;
            }
            client_use_auth(&auth);
            break;
        }
        default:
            usage(stderr);
            return 2;
        }
    }
    char err[256];
    if (addrs == NULL || addr_list_parse(addrs, NULL, &o.addrs, err, sizeof(err)) != 0 ||
        o.addrs.n == 0) {
        fprintf(stderr, "loadgen: -a ADDRS is required (host:port,...)\n");
        return 2;
    }
    if (o.conns == 0 || o.conns > 1024 || o.depth == 0 || o.depth > MAX_DEPTH) {
        fprintf(stderr, "loadgen: -c must be 1..1024 and -p 1..%d\n", MAX_DEPTH);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(cmd, "write") == 0) {
        return cmd_write(&o);
    }
    if (strcmp(cmd, "read") == 0) {
        if (o.target[0] == '\0') {
            snprintf(o.target, sizeof(o.target), "%s",
                     o.consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE
                         ? "primary"
                         : "backup");
        }
        o.size = 0;
        return cmd_read(&o);
    }
    if (strcmp(cmd, "failover") == 0) {
        if (o.kill_pid <= 0) {
            fprintf(stderr, "loadgen: failover needs -k PID\n");
            return 2;
        }
        if (o.timeout_ms == 10000) {
            o.timeout_ms = 30000;
        }
        return cmd_failover(&o);
    }
    if (strcmp(cmd, "catchup") == 0) {
        return cmd_catchup(&o);
    }
    if (strcmp(cmd, "status") == 0) {
        return cmd_status(&o);
    }
    usage(stderr);
    return 2;
}
