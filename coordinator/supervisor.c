/*
 * coordinator/supervisor.c — see supervisor.h.
 *
 * Sections: preflight (the data dir's lock, free ports), children (start,
 * exit, restart or give up, retire), the set (add, lookups), stopping.
 *
 * A child's handles: its restart timer, open from creation until the child
 * is freed, and its process handle, open from each uv_spawn until its
 * close callback (also when uv_spawn failed: libuv initialises the handle
 * either way). A child is freed, and leaves the array, once it is retired
 * (or the supervisor stops) and its process handle is closed.
 */
#include "supervisor.h"
#include "bounds.h"
#include "clock.h"
#include "logging.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP_GRACE_MS  3000
#define MAX_CHILDREN   (2 * SUPERVISOR_MAX) /* the live ones and retired ones still exiting */
#define LOCK_FILE_NAME "coordinator.lock"

struct child {
    struct supervisor *s;
    char id[LIMIT_ID_BYTES];
    unsigned port;
    char listen[96];
    char data_dir[600];
    uv_process_t proc;
    bool running;  /* the process handle is open */
    bool retired;  /* stopped for good on purpose */
    bool given_up; /* kept exiting at start */
    bool freeing;  /* its restart timer is closing */
    int64_t started_at;
    unsigned quick_exits; /* in a row */
    uv_timer_t restart;
};

struct supervisor {
    uv_loop_t *loop;
    struct supervisor_options o;
    supervisor_exit_fn on_exit;
    void *arg;
    struct child *children[MAX_CHILDREN];
    unsigned n_children;
    unsigned next_index; /* the next rK tried by supervisor_add */
    bool stopping;
    bool kill_closing;
    uv_timer_t kill_timer;
    unsigned open_handles; /* kill_timer and every child's restart timer */
    void (*done)(void *arg);
    void *done_arg;
};

/* ========================================================================
 * Preflight
 * ====================================================================== */

bool supervisor_port_free(const char *host, unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port == 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return false;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

int supervisor_preflight(const struct supervisor_options *o, int *lock_fd, char *err, size_t errlen)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", o->data_dir, LOCK_FILE_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen,
                 "another coordinator%s%s%s already supervises replicas in %s: give this one "
                 "its own --data-dir, --spawn-base-port and --listen",
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", o->data_dir);
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        log_warn("cannot write the pid into %s: %s", path, strerror(errno));
    }
    for (unsigned i = 0; i < o->n; i++) {
        if (!supervisor_port_free(o->host, o->base_port + i)) {
            snprintf(err, errlen,
                     "port %u (for replica r%u) on %s is taken, by another coordinator --spawn "
                     "or anything else: choose free ports with --spawn-base-port (replicas use "
                     "%u ports from there up)",
                     o->base_port + i, i + 1, o->host, o->n);
            close(fd);
            return -1;
        }
    }
    *lock_fd = fd;
    return 0;
}

/* ========================================================================
 * Children
 * ====================================================================== */

static void spawn_child(struct child *ch);

static void handle_closed(struct supervisor *s)
{
    if (--s->open_handles == 0 && s->stopping) {
        void (*done)(void *) = s->done;
        void *arg = s->done_arg;
        free(s);
        if (done) {
            done(arg);
        }
    }
}

static void kill_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* Stopping, and nothing runs any more: the kill timer goes too. */
static void maybe_finish(struct supervisor *s)
{
    if (!s->stopping || s->kill_closing) {
        return;
    }
    for (unsigned i = 0; i < s->n_children; i++) {
        if (s->children[i]->running) {
            return;
        }
    }
    s->kill_closing = true;
    uv_timer_stop(&s->kill_timer);
    uv_close((uv_handle_t *)&s->kill_timer, kill_timer_closed);
}

static void child_freed(uv_handle_t *h)
{
    struct child *ch = h->data;
    struct supervisor *s = ch->s;
    for (unsigned i = 0; i < s->n_children; i++) {
        if (s->children[i] == ch) {
            s->children[i] = s->children[--s->n_children];
            break;
        }
    }
    free(ch);
    handle_closed(s);
}

/* Free a child that is done with: retired (or stopping) and not running. */
static void child_release(struct child *ch)
{
    if (ch->running || ch->freeing || !(ch->retired || ch->s->stopping)) {
        return;
    }
    ch->freeing = true;
    uv_timer_stop(&ch->restart);
    uv_close((uv_handle_t *)&ch->restart, child_freed);
}

static void proc_closed(uv_handle_t *h)
{
    struct child *ch = h->data;
    ch->running = false;
    struct supervisor *s = ch->s;
    child_release(ch);
    maybe_finish(s);
}

static void restart_cb(uv_timer_t *t)
{
    struct child *ch = t->data;
    if (!ch->s->stopping && !ch->retired && !ch->given_up) {
        spawn_child(ch);
    }
}

/* The process ended (or could not start: status -1): restart it, give it
 * up, or let it go. */
static void child_ended(struct child *ch, int64_t status, int sig)
{
    struct supervisor *s = ch->s;
    if (s->stopping) {
        return;
    }
    enum supervisor_outcome outcome = SUPERVISOR_RETIRED;
    if (ch->retired) {
        log_info("replica %s stopped for good (status %lld, signal %d)", ch->id, (long long)status,
                 sig);
    } else {
        /* A start failure is an exit of its own making: not a fail request
         * (75), and not a kill from outside (an operator's, a test's or a
         * benchmark's SIGKILL may come right after a restart, again and
         * again, and must never make us give a healthy replica up). */
        bool killed = sig == SIGKILL || sig == SIGTERM || sig == SIGINT;
        bool quick = status != EXIT_FAILED_ON_REQUEST && !killed &&
                     clock_mono_ms() - ch->started_at < SUPERVISOR_START_WINDOW_MS;
        ch->quick_exits = quick ? ch->quick_exits + 1 : 0;
        if (ch->quick_exits >= SUPERVISOR_GIVE_UP_AFTER) {
            ch->given_up = true;
            outcome = SUPERVISOR_GIVEN_UP;
            log_error("replica %s exited %u times in a row within %d ms of starting (last: "
                      "status %lld, signal %d): giving up on it; see its log, fix the cause "
                      "(data dir %s, port %u) and restart the coordinator",
                      ch->id, ch->quick_exits, SUPERVISOR_START_WINDOW_MS, (long long)status, sig,
                      ch->data_dir, ch->port);
        } else {
            outcome = SUPERVISOR_RESTARTING;
            log_info("replica %s exited (status %lld, signal %d); restarting in %u ms", ch->id,
                     (long long)status, sig, s->o.restart_delay_ms);
            uv_timer_start(&ch->restart, restart_cb, s->o.restart_delay_ms, 0);
        }
    }
    if (s->on_exit) {
        s->on_exit(s->arg, ch->id, status, sig, outcome);
    }
}

static void exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct child *ch = p->data;
    child_ended(ch, status, sig);
    uv_close((uv_handle_t *)p, proc_closed);
}

/* "host:port,..." of every replica under supervision, ch's own included. */
static void peer_list(const struct supervisor *s, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < s->n_children && used < len; i++) {
        const struct child *c = s->children[i];
        if (!c->retired) {
            used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "", c->listen);
        }
    }
}

static void spawn_child(struct child *ch)
{
    struct supervisor *s = ch->s;
    char parent[16], peers[MAX_CHILDREN * 32];
    snprintf(parent, sizeof(parent), "%d", (int)getpid());
    /* Every current replica, so a new one finds them all and a restarted
     * one also knows the replicas added since it first started. */
    peer_list(s, peers, sizeof(peers));
    char *args[] = {s->o.replica_bin, "--id",         ch->id,     "--name",  ch->id, "--listen",
                    ch->listen,       "--advertise",  ch->listen, "--peers", peers,  "--data-dir",
                    ch->data_dir,     "--parent-pid", parent,     NULL,      NULL,   NULL};
    if (s->o.secret_file[0] != '\0') {
        args[15] = "--cluster-secret-file";
        args[16] = s->o.secret_file;
    }
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    int log_fd = -1;
    if (s->o.log_dir[0] != '\0') {
        char path[700];
        snprintf(path, sizeof(path), "%s/%s.log", s->o.log_dir, ch->id);
        log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    for (int i = 1; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = log_fd >= 0 ? log_fd : i;
    }
    uv_process_options_t po = {
        .exit_cb = exit_cb,
        .file = s->o.replica_bin,
        .args = args,
        .stdio_count = 3,
        .stdio = stdio,
    };
    ch->proc.data = ch;
    ch->started_at = clock_mono_ms();
    ch->running = true; /* the handle is open whether or not the process started */
    int rc = uv_spawn(s->loop, &ch->proc, &po);
    if (log_fd >= 0) {
        close(log_fd);
    }
    if (rc < 0) {
        log_error("cannot start replica %s (%s): %s", ch->id, s->o.replica_bin, uv_strerror(rc));
        child_ended(ch, -1, 0);
        uv_close((uv_handle_t *)&ch->proc, proc_closed);
        return;
    }
    log_info("started replica %s (pid %d) on %s", ch->id, ch->proc.pid, ch->listen);
}

static struct child *child_new(struct supervisor *s, unsigned index, unsigned port)
{
    if (s->n_children == MAX_CHILDREN) {
        return NULL;
    }
    struct child *ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        return NULL;
    }
    ch->s = s;
    ch->port = port;
    snprintf(ch->id, sizeof(ch->id), "r%u", index);
    snprintf(ch->listen, sizeof(ch->listen), "%s:%u", s->o.host, port);
    snprintf(ch->data_dir, sizeof(ch->data_dir), "%s/%s", s->o.data_dir, ch->id);
    uv_timer_init(s->loop, &ch->restart);
    ch->restart.data = ch;
    s->open_handles++;
    s->children[s->n_children++] = ch;
    return ch;
}

/* ========================================================================
 * The set
 * ====================================================================== */

static struct child *find(const struct supervisor *s, const char *id)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        if (!s->children[i]->retired && strcmp(s->children[i]->id, id) == 0) {
            return s->children[i];
        }
    }
    return NULL;
}

static unsigned live_count(const struct supervisor *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_children; i++) {
        n += !s->children[i]->retired;
    }
    return n;
}

static bool port_used(const struct supervisor *s, unsigned port)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        if (s->children[i]->port == port) {
            return true;
        }
    }
    return false;
}

/* An id is fresh when no child ever had it (the index only grows), the
 * cluster does not know it, and no data dir of that name exists (an earlier
 * run's replica: its log would make it an old member under a new port). */
static bool id_fresh(const struct supervisor *s, const char *id, supervisor_taken_fn taken,
                     void *arg)
{
    if (taken != NULL && taken(arg, id)) {
        return false;
    }
    char dir[600];
    struct stat st;
    snprintf(dir, sizeof(dir), "%s/%s", s->o.data_dir, id);
    return stat(dir, &st) != 0 && errno == ENOENT;
}

int supervisor_add(struct supervisor *s, supervisor_taken_fn taken, void *arg, char *id,
                   size_t idlen, char *address, size_t addrlen, char *err, size_t errlen)
{
    if (s->stopping) {
        snprintf(err, errlen, "the supervisor is stopping");
        return -1;
    }
    if (live_count(s) >= SUPERVISOR_MAX || s->n_children == MAX_CHILDREN) {
        snprintf(err, errlen, "%u replicas run already (the member limit)", SUPERVISOR_MAX);
        return -1;
    }
    char cand[LIMIT_ID_BYTES];
    unsigned index = s->next_index;
    for (;; index++) {
        if (index > 1000000) {
            snprintf(err, errlen, "no fresh replica id left");
            return -1;
        }
        snprintf(cand, sizeof(cand), "r%u", index);
        if (id_fresh(s, cand, taken, arg)) {
            break;
        }
    }
    unsigned port = s->o.base_port;
    while (port <= 65535 && (port_used(s, port) || !supervisor_port_free(s->o.host, port))) {
        port++;
    }
    if (port > 65535) {
        snprintf(err, errlen, "no free port from %u up on %s", s->o.base_port, s->o.host);
        return -1;
    }
    struct child *ch = child_new(s, index, port);
    if (ch == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->next_index = index + 1;
    snprintf(id, idlen, "%s", ch->id);
    snprintf(address, addrlen, "%s", ch->listen);
    spawn_child(ch);
    return 0;
}

bool supervisor_retire(struct supervisor *s, const char *id, bool terminate)
{
    struct child *ch = find(s, id);
    if (ch == NULL) {
        return false;
    }
    ch->retired = true;
    uv_timer_stop(&ch->restart);
    if (ch->running) {
        if (terminate && !uv_is_closing((uv_handle_t *)&ch->proc)) {
            log_info("stopping replica %s for good (SIGTERM)", ch->id);
            uv_process_kill(&ch->proc, SIGTERM);
        }
    } else {
        log_info("replica %s retired (not running)", ch->id);
        child_release(ch);
    }
    return true;
}

bool supervisor_has(const struct supervisor *s, const char *id, bool *given_up)
{
    const struct child *ch = find(s, id);
    if (given_up != NULL) {
        *given_up = ch != NULL && ch->given_up;
    }
    return ch != NULL;
}

void supervisor_targets(const struct supervisor *s, struct addr_list *out)
{
    out->n = 0;
    for (unsigned i = 0; i < s->n_children && out->n < ADDR_MAX_ITEMS; i++) {
        const struct child *ch = s->children[i];
        if (ch->retired) {
            continue;
        }
        struct addr_item *it = &out->items[out->n++];
        snprintf(it->host, sizeof(it->host), "%s", s->o.host);
        snprintf(it->port, sizeof(it->port), "%u", ch->port);
    }
}

struct supervisor *supervisor_start(uv_loop_t *loop, const struct supervisor_options *o,
                                    supervisor_exit_fn on_exit, void *arg)
{
    struct supervisor *s = calloc(1, sizeof(*s));
    if (s == NULL || o->n == 0 || o->n > SUPERVISOR_MAX) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->o = *o;
    s->on_exit = on_exit;
    s->arg = arg;
    s->next_index = o->n + 1;
    uv_timer_init(loop, &s->kill_timer);
    s->kill_timer.data = s;
    s->open_handles = 1;
    /* All first, then start them: each one's --peers lists them all. */
    for (unsigned i = 0; i < o->n; i++) {
        child_new(s, i + 1, o->base_port + i);
    }
    for (unsigned i = 0; i < s->n_children; i++) {
        spawn_child(s->children[i]);
    }
    return s;
}

/* ========================================================================
 * Stopping
 * ====================================================================== */

static void kill_cb(uv_timer_t *t)
{
    struct supervisor *s = t->data;
    for (unsigned i = 0; i < s->n_children; i++) {
        struct child *ch = s->children[i];
        if (ch->running && !uv_is_closing((uv_handle_t *)&ch->proc)) {
            log_warn("replica %s did not stop in time: SIGKILL", ch->id);
            uv_process_kill(&ch->proc, SIGKILL);
        }
    }
}

void supervisor_stop(struct supervisor *s, void (*done)(void *arg), void *arg)
{
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    uv_timer_start(&s->kill_timer, kill_cb, STOP_GRACE_MS, 0);
    /* Children are freed as they go, which reorders the array: walk a copy. */
    struct child *all[MAX_CHILDREN];
    unsigned n = s->n_children;
    memcpy(all, s->children, n * sizeof(all[0]));
    for (unsigned i = 0; i < n; i++) {
        struct child *ch = all[i];
        uv_timer_stop(&ch->restart);
        if (ch->running && !uv_is_closing((uv_handle_t *)&ch->proc)) {
            uv_process_kill(&ch->proc, SIGTERM);
        }
        child_release(ch);
    }
    maybe_finish(s);
}
