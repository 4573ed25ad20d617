/*
 * coordinator/supervisor.h — `coordinator --spawn N`: N local replica
 * processes on loopback, each with its own port and data dir, restarted
 * when they exit (the local stand-in for Docker's restart policy), all
 * stopped on shutdown. Runs on the cluster's libuv loop.
 */
#ifndef COORDINATOR_SUPERVISOR_H
#define COORDINATOR_SUPERVISOR_H

#include <stdint.h>
#include <uv.h>

#include "addr.h"

struct supervisor_options {
    unsigned n;
    char replica_bin[512];
    char data_dir[512]; /* replica i keeps its log in <data_dir>/r<i> */
    char host[64];      /* 127.0.0.1 */
    unsigned base_port; /* replica i listens on base_port + i - 1 */
    unsigned restart_delay_ms;
    char log_dir[512]; /* "" to inherit stderr; else <log_dir>/r<i>.log */
};

struct supervisor;

/* Called on the loop thread when a replica process exits. */
typedef void (*supervisor_exit_fn)(void *arg, const char *id, int64_t exit_status, int term_signal);

struct supervisor *supervisor_start(uv_loop_t *loop, const struct supervisor_options *o,
                                    supervisor_exit_fn on_exit, void *arg);
/* The replicas' addresses, for the cluster to connect to. */
void supervisor_addresses(const struct supervisor_options *o, struct addr_list *out);
/* SIGTERM every replica, SIGKILL what is left after a grace period, then
 * call done once all have exited and every handle is closed. */
void supervisor_stop(struct supervisor *s, void (*done)(void *arg), void *arg);

#endif
