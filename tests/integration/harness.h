/*
 * tests/integration/harness.h — real replica processes on 127.0.0.1 for the
 * multi-process tests: start, kill, pause, restart, talk to them through the
 * blocking client (common/client.h), and check their committed logs.
 *
 * Every test is its own executable and calls it_init() first. The harness
 * owns every process it starts: it tracks each pid and stops them all by
 * pid at exit, also when an assertion fails (atexit) or the test itself is
 * interrupted (signal handlers); the replicas also get PR_SET_PDEATHSIG so a
 * test killed outright (ctest timeout) cannot leave them running. A run
 * lives in a fresh mkdtemp directory holding every data dir and log; it is
 * removed on success and kept, with the log tails printed, on failure.
 *
 * A test may put chosen data dirs on small tmpfs mounts of their own, in a
 * private mount namespace (it_private_mounts, it_mount_tmpfs), to fill them
 * on purpose; they vanish with the test process.
 *
 * IT_KEEP=1 in the environment keeps the run directory of a passing test.
 * A replica that ignores SIGTERM gets its thread stacks saved (gdb) next to
 * its log before the SIGKILL.
 *
 * Assertions never wait a fixed time: IT_WAIT_UNTIL polls a condition up to
 * a generous deadline, and only running out of it fails.
 */
#ifndef TESTS_INTEGRATION_HARNESS_H
#define TESTS_INTEGRATION_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

#define IT_MAX_REPLICAS 8
#define IT_ID_MAX       64
#define IT_CLIENT_ID    128
#define IT_SKIP_CODE    77 /* ctest's SKIP_RETURN_CODE for these tests */

/* ------------------------------------------------------------------------
 * Failing
 * ------------------------------------------------------------------------ */

/* Print the reason, the replicas' log tails, stop everything, exit(1).
 * Safe to call from any thread: the first caller wins, others block. */
void it_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define IT_FAIL(...) it_fail(__FILE__, __LINE__, __VA_ARGS__)

/* The test cannot run here (no privilege, no kernel support): say why,
 * stop everything, remove the run directory, exit(IT_SKIP_CODE). Never a
 * silent pass. */
void it_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The message is a format; the condition's text is printed with it. */
#define IT_CHECK(cond, fmt, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            it_fail(__FILE__, __LINE__, "check failed (%s): " fmt, #cond, ##__VA_ARGS__);          \
        }                                                                                          \
    } while (0)

/* Poll `cond` every 10 ms until it holds; fail after timeout_ms. Also fails
 * at once when a replica died that nobody killed. */
#define IT_WAIT_UNTIL(timeout_ms, what, cond)                                                      \
    do {                                                                                           \
        int64_t it_deadline_ = it_now_ms() + (timeout_ms);                                         \
        for (;;) {                                                                                 \
            it_check_alive();                                                                      \
            if (cond) {                                                                            \
                break;                                                                             \
            }                                                                                      \
            if (it_now_ms() > it_deadline_) {                                                      \
                it_fail(__FILE__, __LINE__, "timed out after %d ms waiting for %s",                \
                        (int)(timeout_ms), (what));                                                \
            }                                                                                      \
            it_sleep_ms(10);                                                                       \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------
 * The cluster
 * ------------------------------------------------------------------------ */

struct it_replica {
    char id[IT_ID_MAX];
    char addr[32]; /* 127.0.0.1:port, fixed for the whole run */
    char data_dir[512];
    char log_path[512];
    char mount[512]; /* the tmpfs holding data_dir, "" when none */
    pid_t pid;       /* 0 while not running */
    bool paused;     /* SIGSTOPped */
    unsigned starts;
};

struct it_cluster {
    unsigned n;
    struct it_replica r[IT_MAX_REPLICAS];
    char peers[IT_MAX_REPLICAS * 32];
    int64_t started_ms; /* when it_start_all began */
    /* Timing flags; the replica's defaults unless a test changes them
     * before starting. */
    unsigned heartbeat_ms;
    unsigned election_min_ms;
    unsigned election_max_ms;
    unsigned initial_size;  /* --initial-size; 0: n */
    unsigned segment_bytes; /* --segment-bytes; 0: the replica's default */
    char secret_file[512];  /* --cluster-secret-file; "" none (see it_cluster_secret) */
};

/* Parse argv (argv[1]: the replica binary), make the run directory, install
 * the exit and signal handlers. `name` prefixes every line printed. */
void it_init(int argc, char **argv, const char *name);
/* Describe n replicas r1..rn (free loopback ports, data dirs, logs). */
struct it_cluster *it_cluster_new(unsigned n);
void it_start_all(struct it_cluster *cl);
/* Give the cluster a secret (a new file in the run dir) before it starts:
 * every replica gets it, and every connection this process opens through
 * the blocking client proves it from now on. */
void it_cluster_secret(struct it_cluster *cl);
/* Start replica i with its id, data dir and port (also a restart). */
void it_start(struct it_cluster *cl, unsigned i);
/* Send sig and reap: SIGKILL now, SIGTERM with the same reaping. Fails if
 * the exit is not what a kill of that signal gives. */
void it_kill(struct it_cluster *cl, unsigned i, int sig);
void it_pause(struct it_cluster *cl, unsigned i);  /* SIGSTOP, wait until stopped */
void it_resume(struct it_cluster *cl, unsigned i); /* SIGCONT */
/* Wait for replica i to exit on its own; its wait status, or -1 on timeout. */
int it_wait_exit(struct it_cluster *cl, unsigned i, int timeout_ms);
/* Delete replica i's data dir (it must not be running). */
void it_wipe(struct it_cluster *cl, unsigned i);
/* Fail if a running replica exited without the test asking for it. Only the
 * main thread checks (it alone reaps). */
void it_check_alive(void);
/* The end of a passing test: SIGTERM every replica, require a clean exit
 * (status 0: sanitizer reports make it non-zero), remove the run dir. */
void it_finish(struct it_cluster *cl);
/* Index of the replica with this id or advertised address, or -1. */
int it_index_of_id(const struct it_cluster *cl, const char *id);
int it_index_of_addr(const struct it_cluster *cl, const char *addr);
bool it_up(const struct it_cluster *cl, unsigned i); /* running and not paused */

/* Put this process, and so every replica it starts later, in a mount
 * namespace of its own whose mounts do not propagate to the host: they go
 * when the test exits, however it exits. Call it before starting threads.
 * 0, or -1 with the reason (not root, no unshare). */
int it_private_mounts(char *why, size_t len);
/* Mount a tmpfs of size_kib at <run dir>/<id>-fs and move replica i's data
 * dir to <that>/data (before its first start). The harness unmounts it at
 * the end; on failure (or with IT_KEEP) it first copies the data dir to
 * <run dir>/<id>-data, since the mount goes with the test process.
 * 0, or -1 with the reason. */
int it_mount_tmpfs(struct it_cluster *cl, unsigned i, unsigned size_kib, char *why, size_t len);

/* ------------------------------------------------------------------------
 * Talking to replicas
 * ------------------------------------------------------------------------ */

struct it_status {
    char id[IT_ID_MAX];
    char role[16];
    char primary[IT_ID_MAX];
    uint64_t epoch;
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t processed;
    uint64_t synced;
    bool voter;
    uint64_t pending_requests; /* client requests waiting for their answer */
    char disk[128];            /* "ok", or why the log cannot be written ("full: ...") */
};

/* One status call on a fresh connection. 0, or -1 (down, paused, slow). */
int it_status(const struct it_cluster *cl, unsigned i, struct it_status *out);
/* The replica that says it is primary, highest epoch first, among those up;
 * -1 when none does right now. */
int it_primary_now(const struct it_cluster *cl, struct it_status *out);
/* Wait (generously) for a primary; fails on timeout. */
int it_wait_primary(struct it_cluster *cl, struct it_status *out);
/* Wait until every replica that is up agrees with the primary on epoch,
 * last index and commit index (replicas in `skip_mask` excepted). */
void it_wait_caught_up(struct it_cluster *cl, unsigned skip_mask, int timeout_ms);
/* True when replica i holds what the primary holds (same epoch, commit and
 * last index) and follows it as a backup. */
bool it_is_caught_up(const struct it_cluster *cl, unsigned i);

/* One acknowledged write, as the primary's OK reply described it. */
struct it_ack {
    char client_id[IT_CLIENT_ID];
    char data[64];
    uint64_t index;
    uint64_t epoch;
    char primary[IT_ID_MAX];
    int writer;         /* which writer sent it: order is checked per writer */
    int64_t latency_ms; /* first send to OK */
    unsigned attempts;
};

/* A growing list of acks, shared between writer threads. */
struct it_acks {
    pthread_mutex_t lock;
    struct it_ack *a;
    size_t n;
    size_t cap;
};
void it_acks_init(struct it_acks *acks);
void it_acks_add(struct it_acks *acks, const struct it_ack *a);
void it_acks_free(struct it_acks *acks);

/* Sends requests to whichever replica is primary: follows NOT_PRIMARY
 * hints, and retries with the SAME client id after UNKNOWN, timeouts and
 * connection errors (guarantee 3: the retry is applied once). Keeps its
 * connection between calls. One per thread. */
struct it_writer {
    const struct it_cluster *cl;
    struct client c;
    int conn; /* replica index the connection goes to, -1 none */
    unsigned next;
    int id; /* stored in acks */
    int call_timeout_ms;
    char name[32];
};
void it_writer_init(struct it_writer *w, const struct it_cluster *cl, int id);
void it_writer_close(struct it_writer *w);
/* 0 with *out filled once acknowledged, -1 after timeout_ms. */
int it_write(struct it_writer *w, const char *client_id, const char *data, int timeout_ms,
             struct it_ack *out);
/* it_write, failing the test unless acknowledged within timeout_ms. */
void it_write_ok(struct it_writer *w, const char *client_id, const char *data, int timeout_ms,
                 struct it_ack *out);
/* `count` acknowledged writes with ids "<prefix>-<n>" for n from `first`,
 * each within timeout_ms, appended to acks. */
void it_write_series(struct it_writer *w, struct it_acks *acks, const char *prefix, unsigned first,
                     unsigned count, int timeout_ms);
/* The usual opening of a test: n replicas started, one writer (id 0),
 * `count` acknowledged writes named prefix-*, every replica caught up. */
struct it_cluster *it_cluster_warm(unsigned n, struct it_writer *w, struct it_acks *acks,
                                   const char *prefix, unsigned count);

/* ------------------------------------------------------------------------
 * Committed logs
 * ------------------------------------------------------------------------ */

struct it_entry {
    uint64_t index;
    uint64_t epoch;
    char client_id[IT_CLIENT_ID];
    char primary[IT_ID_MAX];
    char data[64];
};

struct it_log {
    struct it_entry *e;
    size_t n;
    size_t cap;
    uint64_t commit_index;
    uint64_t total; /* ReadReply.total of the last page */
};

/* Every committed data entry of replica i, read page by page (after/limit)
 * with the given filter (0 ALL, 1 PROCESSED, 2 SYNCED). Fails on error. */
void it_read_log(const struct it_cluster *cl, unsigned i, int filter, struct it_log *out);
void it_log_free(struct it_log *log);
/* Fail unless log b holds exactly the entries of a's first b->n positions
 * (index, epoch, client id, primary, data); names say whose they are. */
void it_check_prefix(const struct it_log *a, const char *a_name, const struct it_log *b,
                     const char *b_name);

/* The end-of-test check (guarantees 2 and 3), over every replica that is up
 * (all of them must be caught up, see it_wait_caught_up):
 *  - the committed logs are identical: (index, epoch, client id, primary, data);
 *  - no client id appears twice;
 *  - every ack is in the log exactly once, at the index, epoch and primary its
 *    OK reply named, with its data; one writer's acks are in ack order;
 *  - every entry is an ack or one of `maybe` (sent, outcome unknown);
 *  - PROCESSED and SYNCED split ALL by whether the replica is the entry's
 *    primary, and ReadReply.total counts them. */
void it_check_logs(const struct it_cluster *cl, const struct it_acks *acks,
                   const char *const *maybe, size_t n_maybe);

/* ------------------------------------------------------------------------
 * Raw sockets (bad input) and small things
 * ------------------------------------------------------------------------ */

/* A blocking TCP connection to replica i, no Hello sent. -1 on error. */
int it_raw_connect(const struct it_cluster *cl, unsigned i);
int it_raw_send(int fd, const void *buf, size_t len);
/* Pack and send one envelope as a frame. */
int it_raw_send_env(int fd, const Envelope *env);
/* Read and discard until the peer closes (0 / ECONNRESET): 0, or -1 when
 * it is still open after timeout_ms. */
int it_raw_expect_closed(int fd, int timeout_ms);

int64_t it_now_ms(void);
void it_sleep_ms(int ms);
/* printf with the test's name and the time since it_init in front. */
void it_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
