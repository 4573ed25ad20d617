/*
 * coordinator/supervisor.c — see supervisor.h.
 */
#include "supervisor.h"
#include "logging.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STOP_GRACE_MS 3000

struct child {
    struct supervisor *s;
    unsigned index; /* 1-based */
    char id[16];
    char port[8];
    char listen[96];
    char data_dir[600];
    uv_process_t proc;
    bool running;
    uv_timer_t restart;
};

struct supervisor {
    uv_loop_t *loop;
    struct supervisor_options o;
    supervisor_exit_fn on_exit;
    void *arg;
    char peers[4096];
    struct child *children;
    bool stopping;
    uv_timer_t kill_timer;
    unsigned open_handles;
    void (*done)(void *arg);
    void *done_arg;
};

static void spawn_child(struct child *ch);

static void supervisor_handle_closed(struct supervisor *s)
{
    if (--s->open_handles == 0 && s->stopping) {
        void (*done)(void *) = s->done;
        void *arg = s->done_arg;
        free(s->children);
        free(s);
        if (done) {
            done(arg);
        }
    }
}

static void kill_timer_closed(uv_handle_t *h)
{
    supervisor_handle_closed(h->data);
}

static void restart_timer_closed(uv_handle_t *h)
{
    struct child *ch = h->data;
    supervisor_handle_closed(ch->s);
}

static void all_exited(struct supervisor *s)
{
    for (unsigned i = 0; i < s->o.n; i++) {
        if (s->children[i].running) {
            return;
        }
    }
    uv_timer_stop(&s->kill_timer);
    uv_close((uv_handle_t *)&s->kill_timer, kill_timer_closed);
    for (unsigned i = 0; i < s->o.n; i++) {
        uv_close((uv_handle_t *)&s->children[i].restart, restart_timer_closed);
    }
}

static void proc_closed(uv_handle_t *h)
{
    struct child *ch = h->data;
    ch->running = false;
    if (ch->s->stopping) {
        all_exited(ch->s);
    }
}

static void restart_cb(uv_timer_t *t)
{
    struct child *ch = t->data;
    if (!ch->s->stopping) {
        spawn_child(ch);
    }
}

static void exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct child *ch = p->data;
    struct supervisor *s = ch->s;
    if (!s->stopping) {
        log_info("replica %s exited (status %lld, signal %d); restarting in %u ms", ch->id,
                 (long long)status, sig, s->o.restart_delay_ms);
        if (s->on_exit) {
            s->on_exit(s->arg, ch->id, status, sig);
        }
        uv_timer_start(&ch->restart, restart_cb, s->o.restart_delay_ms, 0);
    }
    uv_close((uv_handle_t *)p, proc_closed);
}

static void spawn_child(struct child *ch)
{
    struct supervisor *s = ch->s;
    char parent[16];
    snprintf(parent, sizeof(parent), "%d", (int)getpid());
    char *args[] = {s->o.replica_bin, "--id",         ch->id,     "--name",  ch->id,   "--listen",
                    ch->listen,       "--advertise",  ch->listen, "--peers", s->peers, "--data-dir",
                    ch->data_dir,     "--parent-pid", parent,     NULL};
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
    int rc = uv_spawn(s->loop, &ch->proc, &po);
    if (log_fd >= 0) {
        close(log_fd);
    }
    if (rc < 0) {
        log_error("cannot start %s: %s; retrying", s->o.replica_bin, uv_strerror(rc));
        uv_timer_start(&ch->restart, restart_cb, 1000, 0);
        return;
    }
    ch->running = true;
    log_info("started replica %s (pid %d) on %s", ch->id, ch->proc.pid, ch->listen);
}

void supervisor_addresses(const struct supervisor_options *o, struct addr_list *out)
{
    out->n = 0;
    for (unsigned i = 0; i < o->n && i < ADDR_MAX_ITEMS; i++) {
        struct addr_item *it = &out->items[out->n++];
        snprintf(it->host, sizeof(it->host), "%s", o->host);
        snprintf(it->port, sizeof(it->port), "%u", o->base_port + i);
    }
}

struct supervisor *supervisor_start(uv_loop_t *loop, const struct supervisor_options *o,
                                    supervisor_exit_fn on_exit, void *arg)
{
    struct supervisor *s = calloc(1, sizeof(*s));
    if (s == NULL || o->n == 0 || o->n > ADDR_MAX_ITEMS) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->o = *o;
    s->on_exit = on_exit;
    s->arg = arg;
    s->children = calloc(o->n, sizeof(*s->children));
    if (s->children == NULL) {
        free(s);
        return NULL;
    }
    size_t used = 0;
    for (unsigned i = 0; i < o->n; i++) {
        used += (size_t)snprintf(s->peers + used, sizeof(s->peers) - used, "%s%s:%u", i ? "," : "",
                                 o->host, o->base_port + i);
    }
    uv_timer_init(loop, &s->kill_timer);
    s->kill_timer.data = s;
    s->open_handles = 1;
    for (unsigned i = 0; i < o->n; i++) {
        struct child *ch = &s->children[i];
        ch->s = s;
        ch->index = i + 1;
        snprintf(ch->id, sizeof(ch->id), "r%u", i + 1);
        snprintf(ch->listen, sizeof(ch->listen), "%s:%u", o->host, o->base_port + i);
        snprintf(ch->data_dir, sizeof(ch->data_dir), "%s/%s", o->data_dir, ch->id);
        uv_timer_init(loop, &ch->restart);
        ch->restart.data = ch;
        s->open_handles++;
        spawn_child(ch);
    }
    return s;
}

static void kill_cb(uv_timer_t *t)
{
    struct supervisor *s = t->data;
    for (unsigned i = 0; i < s->o.n; i++) {
        if (s->children[i].running) {
            log_warn("replica %s did not stop in time: SIGKILL", s->children[i].id);
            uv_process_kill(&s->children[i].proc, SIGKILL);
        }
    }
}

void supervisor_stop(struct supervisor *s, void (*done)(void *arg), void *arg)
{
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    for (unsigned i = 0; i < s->o.n; i++) {
        uv_timer_stop(&s->children[i].restart);
        if (s->children[i].running) {
            uv_process_kill(&s->children[i].proc, SIGTERM);
        }
    }
    uv_timer_start(&s->kill_timer, kill_cb, STOP_GRACE_MS, 0);
    all_exited(s);
}
