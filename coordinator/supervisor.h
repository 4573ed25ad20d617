/*
 * coordinator/supervisor.h — `coordinator --spawn N`: local replica
 * processes on loopback, each with its own port and data dir, restarted
 * when they exit (the local stand-in for Docker's restart policy), all
 * stopped on shutdown. Runs on the cluster's libuv loop.
 *
 * The set changes at run time: supervisor_add starts one more replica with
 * an id never used before, supervisor_retire stops one for good (it was
 * removed from the configuration). A replica that keeps exiting right after
 * it starts is given up instead of being restarted forever.
 */
#ifndef COORDINATOR_SUPERVISOR_H
#define COORDINATOR_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "addr.h"

/* Replicas alive under one supervisor at once (the member limit). */
#define SUPERVISOR_MAX 32
/* A replica that exits within START_WINDOW_MS of starting, GIVE_UP_AFTER
 * times in a row (a request to fail, status 75, and a kill from outside by
 * SIGKILL, SIGTERM or SIGINT do not count), is given up: no more restarts. */
#define SUPERVISOR_START_WINDOW_MS 2000
#define SUPERVISOR_GIVE_UP_AFTER   5

struct supervisor_options {
    unsigned n;
    char replica_bin[512];
    char data_dir[512]; /* replica rK keeps its log in <data_dir>/rK */
    char host[64];      /* 127.0.0.1 */
    unsigned base_port; /* replica i of the first n listens on base_port + i - 1 */
    unsigned restart_delay_ms;
    char log_dir[512];     /* "" to inherit stderr; else <log_dir>/rK.log */
    char secret_file[512]; /* the cluster secret every replica is given ("" none) */
};

/* What became of a replica process that ended. */
enum supervisor_outcome {
    SUPERVISOR_RESTARTING, /* it will be started again after restart_delay_ms */
    SUPERVISOR_GIVEN_UP,   /* it kept exiting at start: not restarted */
    SUPERVISOR_RETIRED,    /* stopped for good on purpose (supervisor_retire) */
};

struct supervisor;

/* Called on the loop thread when a replica process exits (exit_status -1
 * when it could not even be started). */
typedef void (*supervisor_exit_fn)(void *arg, const char *id, int64_t exit_status, int term_signal,
                                   enum supervisor_outcome outcome);
/* Whether an id is taken in the cluster (a member, a removed one): a new
 * replica never gets it. */
typedef bool (*supervisor_taken_fn)(void *arg, const char *id);

/* Before anything starts (main thread): take the data dir's lock (held in
 * *lock_fd for the life of the process) and check that the first n ports
 * are free. 0, or -1 with a reason that names the flag to change. */
int supervisor_preflight(const struct supervisor_options *o, int *lock_fd, char *err,
                         size_t errlen);

struct supervisor *supervisor_start(uv_loop_t *loop, const struct supervisor_options *o,
                                    supervisor_exit_fn on_exit, void *arg);
/* Start one more replica: a fresh id (never one of a running, retired or
 * earlier replica, one `taken` says is taken, or one with a data dir
 * already), the first free port from base_port up, --peers listing every
 * current replica. 0 with its id and address, or -1 with a reason. */
int supervisor_add(struct supervisor *s, supervisor_taken_fn taken, void *arg, char *id,
                   size_t idlen, char *address, size_t addrlen, char *err, size_t errlen);
/* Stop replica id for good: no restart; SIGTERM when `terminate` and it
 * runs. false when it is not one of ours. */
bool supervisor_retire(struct supervisor *s, const char *id, bool terminate);
/* Is id one of the replicas under supervision (not retired)? Given-up ones
 * are; *given_up says which. */
bool supervisor_has(const struct supervisor *s, const char *id, bool *given_up);
/* The addresses of the replicas under supervision (what the cluster
 * connects to). */
void supervisor_targets(const struct supervisor *s, struct addr_list *out);
/* SIGTERM every replica, SIGKILL what is left after a grace period, then
 * call done once all have exited and every handle is closed. */
void supervisor_stop(struct supervisor *s, void (*done)(void *arg), void *arg);

/* Can a TCP listener bind host:port right now (SO_REUSEADDR, as libuv)? */
bool supervisor_port_free(const char *host, unsigned port);

#endif
