/*
 * coordinator/main.c — the `coordinator` command line: flags (each with an
 * environment twin), then the cluster thread and the HTTP server, until
 * SIGINT or SIGTERM.
 */
#include "cluster.h"
#include "auth.h"
#include "bounds.h"
#include "flags.h"
#include "front.h"
#include "history.h"
#include "http.h"
#include "logging.h"
#include "metrics.h"
#include "peer_auth.h"
#include "supervisor.h"
#include "tls.h"
#include "validate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct flag flags[] = {
    {"listen", "COORDINATOR_LISTEN", "IP:PORT",
     "HTTP and WebSocket address (default 0.0.0.0:8080)"},
    {"replicas", "COORDINATOR_REPLICAS", "LIST",
     "host:port,... or a DNS name resolving to every replica"},
    {"spawn", "COORDINATOR_SPAWN", "N", "start and supervise N local replicas on 127.0.0.1"},
    {"spawn-base-port", "COORDINATOR_SPAWN_BASE_PORT", "PORT",
     "first spawned replica's port (default 7101)"},
    {"replica-bin", "COORDINATOR_REPLICA_BIN", "PATH",
     "replica binary for --spawn (default: next to this one)"},
    {"data-dir", "COORDINATOR_DATA_DIR", "DIR",
     "spawned replicas' data, DIR/r1... (default ./data)"},
    {"dashboard-dir", "COORDINATOR_DASHBOARD_DIR", "DIR",
     "the dashboard's files (default: found near the binary)"},
    {"request-timeout-ms", "COORDINATOR_REQUEST_TIMEOUT_MS", "MS",
     "how long a request may wait for a primary (default 10000)"},
    {"max-body-bytes", "COORDINATOR_MAX_BODY_BYTES", "BYTES",
     "largest request body, else 413 (default 2097152)"},
    {"max-data-bytes", "COORDINATOR_MAX_DATA_BYTES", "BYTES",
     "largest \"data\", else 400 (default 1048576)"},
    {"status-interval-ms", "COORDINATOR_STATUS_INTERVAL_MS", "MS",
     "replica status poll period (default 200)"},
    {"history-events", "COORDINATOR_HISTORY_EVENTS", "N",
     "events and snapshots kept for GET /api/history and new dashboards (default 4000; 0: "
     "none)"},
    {"cluster-secret-file", "COORDINATOR_CLUSTER_SECRET_FILE", "PATH",
     "the replicas' shared secret, proved on every connection to them (with --spawn: default "
     "DIR/cluster-secret, made if missing, given to every replica)"},
    {"log-level", "COORDINATOR_LOG_LEVEL", "LEVEL", "debug, info, warn or error (default info)"},
    {"api-token-file", "COORDINATOR_API_TOKEN_FILE", "PATH",
     "every API call needs Authorization: Bearer <the token in PATH> (default: none)"},
    {"api-read-token-file", "COORDINATOR_API_READ_TOKEN_FILE", "PATH",
     "a second token that may only read (GET, the WebSocket)"},
    {"metrics-open", "COORDINATOR_METRICS_OPEN", NULL,
     "/metrics needs no token (env: true or false)"},
    {"tls-cert", "COORDINATOR_TLS_CERT", "PATH",
     "serve HTTPS with this PEM certificate (chain); needs --tls-key"},
    {"tls-key", "COORDINATOR_TLS_KEY", "PATH", "the PEM private key of --tls-cert"},
};

struct config {
    struct http_options http;
    struct supervisor_options spawn;
    const char *replicas;
    char secret_file[512];
    unsigned status_interval_ms;
    size_t history_events;
    int level;
    const char *token_file, *read_token_file;
    bool metrics_open;
};

/* Each value is checked here, once, against bounds.h. */
static int apply(void *ctx, const char *name, const char *v)
{
    struct config *c = ctx;
    unsigned long long u = 0;
    if (strcmp(name, "listen") == 0) {
        return flags_text(c->http.listen, sizeof(c->http.listen), v);
    } else if (strcmp(name, "replicas") == 0) {
        c->replicas = v;
    } else if (strcmp(name, "replica-bin") == 0) {
        return flags_text(c->spawn.replica_bin, sizeof(c->spawn.replica_bin), v);
    } else if (strcmp(name, "cluster-secret-file") == 0) {
        return flags_text(c->secret_file, sizeof(c->secret_file), v);
    } else if (strcmp(name, "data-dir") == 0) {
        return flags_text(c->spawn.data_dir, sizeof(c->spawn.data_dir), v);
    } else if (strcmp(name, "dashboard-dir") == 0) {
        return flags_text(c->http.dashboard_dir, sizeof(c->http.dashboard_dir), v);
    } else if (strcmp(name, "api-token-file") == 0) {
        c->token_file = v;
    } else if (strcmp(name, "api-read-token-file") == 0) {
        c->read_token_file = v;
    } else if (strcmp(name, "metrics-open") == 0) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            return -1;
        }
        c->metrics_open = strcmp(v, "true") == 0;
    } else if (strcmp(name, "tls-cert") == 0) {
        return flags_text(c->http.tls_cert, sizeof(c->http.tls_cert), v);
    } else if (strcmp(name, "tls-key") == 0) {
        return flags_text(c->http.tls_key, sizeof(c->http.tls_key), v);
    } else if (strcmp(name, "log-level") == 0) {
        c->level = log_level_parse(v);
        return c->level < 0 ? -1 : 0;
    } else if (strcmp(name, "history-events") == 0) {
        if (flags_uint(v, 0, HISTORY_MAX_EVENTS, &u) != 0) {
            return -1;
        }
        c->history_events = (size_t)u;
    } else if (strcmp(name, "spawn") == 0) {
        if (flags_uint(v, 0, LIMIT_MEMBERS, &u) != 0) {
            return -1;
        }
        c->spawn.n = (unsigned)u;
    } else if (strcmp(name, "spawn-base-port") == 0) {
        /* The replicas take the ports from here up. */
        if (flags_uint(v, 1, 65535 - LIMIT_MEMBERS, &u) != 0) {
            return -1;
        }
        c->spawn.base_port = (unsigned)u;
    } else if (strcmp(name, "max-body-bytes") == 0 || strcmp(name, "max-data-bytes") == 0) {
        if (flags_uint(v, 1, LIMIT_BODY_BYTES_MAX, &u) != 0) {
            return -1;
        }
        if (strcmp(name, "max-body-bytes") == 0) {
            c->http.max_body_bytes = (size_t)u;
        } else {
            c->http.max_data_bytes = (size_t)u;
        }
    } else if (flags_uint(v, 1, LIMIT_TIMING_MS_MAX, &u) != 0) {
        return -1;
    } else if (strcmp(name, "request-timeout-ms") == 0) {
        c->http.request_timeout_ms = (unsigned)u;
    } else {
        c->status_interval_ms = (unsigned)u;
    }
    return 0;
}

/* Is the HTTP address (IP:PORT, [IPv6]:PORT or PORT) held by a listener?
 * Only IPv4 literals and a bare port are checked; anything else is left to
 * the front door, which fails with its own reason. */
static bool listen_taken(const char *listen)
{
    struct addr_item it;
    if (strchr(listen, ':') == NULL) {
        snprintf(it.host, sizeof(it.host), "0.0.0.0");
        snprintf(it.port, sizeof(it.port), "%.7s", listen);
    } else if (addr_split(listen, "8080", &it) != 0) {
        return false;
    }
    struct in_addr a;
    uint64_t port;
    if (inet_pton(AF_INET, it.host, &a) != 1 || parse_u64(it.port, 1, 65535, &port) != 0) {
        return false;
    }
    return !supervisor_port_free(it.host, (unsigned)port);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Defaults that depend on where we run from: the build tree puts the
 * replica next door (build/replica/replica) and the dashboard two levels
 * up; an install puts both under /usr/local. */
static void find_defaults(struct config *c)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
        *slash = '\0';
    }
    char cand[PATH_MAX + 64];
    if (c->spawn.replica_bin[0] == '\0') {
        snprintf(cand, sizeof(cand), "%s/../replica/replica", self);
        if (!exists(cand)) {
            snprintf(cand, sizeof(cand), "%s/replica", self);
        }
        snprintf(c->spawn.replica_bin, sizeof(c->spawn.replica_bin), "%.*s",
                 (int)sizeof(c->spawn.replica_bin) - 1, exists(cand) ? cand : "replica");
    }
    if (c->http.dashboard_dir[0] == '\0') {
        const char *tries[] = {"%s/../../dashboard", "%s/../share/replicacao/dashboard",
                               "%s/dashboard"};
        snprintf(c->http.dashboard_dir, sizeof(c->http.dashboard_dir), "dashboard");
        for (size_t i = 0; i < 3; i++) {
            snprintf(cand, sizeof(cand), tries[i], self);
            char index[PATH_MAX + 128];
            snprintf(index, sizeof(index), "%s/index.html", cand);
            if (exists(index)) {
                snprintf(c->http.dashboard_dir, sizeof(c->http.dashboard_dir), "%.*s",
                         (int)sizeof(c->http.dashboard_dir) - 1, cand);
                break;
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct config cfg = {
        .http = {.max_body_bytes = 2u << 20,
                 .max_data_bytes = 1u << 20,
                 .request_timeout_ms = 10000},
        .spawn = {.base_port = 7101, .restart_delay_ms = 300},
        .replicas = "",
        .status_interval_ms = 200,
        .history_events = HISTORY_DEFAULT_EVENTS,
        .level = LOG_INFO,
    };
    snprintf(cfg.http.listen, sizeof(cfg.http.listen), "0.0.0.0:8080");
    snprintf(cfg.spawn.data_dir, sizeof(cfg.spawn.data_dir), "data");
    snprintf(cfg.spawn.host, sizeof(cfg.spawn.host), "127.0.0.1");

    const struct flag_set fs = {
        .prog = "coordinator",
        .about = "The replicacao coordinator: HTTP API, live WebSocket stream, metrics and\n"
                 "dashboard for a replica cluster. Every option can also be set through the\n"
                 "environment variable shown; a flag wins over the environment.",
        .flags = flags,
        .n = sizeof(flags) / sizeof(flags[0]),
        .apply = apply,
        .ctx = &cfg,
    };
    int rc = flags_parse(&fs, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    log_setup("coordinator", (enum log_level)cfg.level);
    find_defaults(&cfg);

    char err[256];
    /* Refused before anything starts: a coordinator meant to be closed must
     * never come up open. */
    struct auth api_auth;
    if (auth_setup(&api_auth, cfg.token_file, cfg.read_token_file, cfg.metrics_open, err,
                   sizeof(err)) != 0) {
        fprintf(stderr, "coordinator: %s\n", err);
        return 2;
    }
    cfg.http.auth = &api_auth;
    bool tls = cfg.http.tls_cert[0] != '\0';
    if (tls != (cfg.http.tls_key[0] != '\0')) {
        fprintf(stderr, "coordinator: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (tls && tls_check(cfg.http.tls_cert, cfg.http.tls_key, err, sizeof(err)) != 0) {
        fprintf(stderr, "coordinator: %s\n", err);
        return 2;
    }

    struct cluster_options co = {.status_interval_ms = cfg.status_interval_ms};
    if (addr_list_parse(cfg.replicas, "5000", &co.replicas, err, sizeof(err)) != 0) {
        fprintf(stderr, "coordinator: --replicas: %s\n", err);
        return 2;
    }
    if (co.replicas.n == 0 && cfg.spawn.n == 0) {
        fprintf(stderr, "coordinator: give --replicas LIST or --spawn N\n");
        return 2;
    }
    int lock_fd = -1; /* held until exit: the data dir is ours */
    if (cfg.spawn.n > 0) {
        if (mkdir(cfg.spawn.data_dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "coordinator: cannot create %s: %s\n", cfg.spawn.data_dir,
                    strerror(errno));
            return 1;
        }
        /* A second coordinator --spawn on this host must not start replicas
         * over the first one's (their ports, their data): it stops here,
         * saying which flag to change, before it starts anything. */
        if (supervisor_preflight(&cfg.spawn, &lock_fd, err, sizeof(err)) != 0) {
            fprintf(stderr, "coordinator: %s\n", err);
            return 1;
        }
        if (listen_taken(cfg.http.listen)) {
            fprintf(stderr,
                    "coordinator: %s is taken (another coordinator?): give this one its own "
                    "--listen\n",
                    cfg.http.listen);
            return 1;
        }
        co.spawn = &cfg.spawn;
        if (cfg.secret_file[0] == '\0') {
            /* Spawned replicas listen on loopback only, but another user of
             * this host could still reach them: each cluster has a secret. */
            snprintf(cfg.secret_file, sizeof(cfg.secret_file), "%.*s/cluster-secret",
                     (int)sizeof(cfg.secret_file) - 16, cfg.spawn.data_dir);
            if (peer_auth_create_secret(cfg.secret_file, err, sizeof(err)) != 0) {
                fprintf(stderr, "coordinator: %s\n", err);
                return 1;
            }
        }
        snprintf(cfg.spawn.secret_file, sizeof(cfg.spawn.secret_file), "%s", cfg.secret_file);
    }
    struct peer_auth auth;
    if (cfg.secret_file[0] != '\0') {
        if (peer_auth_load(&auth, cfg.secret_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "coordinator: %s\n", err);
            return 1;
        }
        co.auth = &auth;
    }

    /* Block the stop signals in every thread; main waits for them below.
     * (libuv unblocks them again in the replicas it spawns.) */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct metrics *metrics = metrics_new();
    /* The history sits between the cluster's publisher and the WebSocket
     * clients; while it records, every event is built, listened to or not. */
    struct history *history = NULL;
    if (cfg.history_events > 0) {
        history = history_new(cfg.history_events, http_publish, NULL);
        cfg.http.history = history;
    }
    struct http *http = http_new(&cfg.http, metrics);
    if (history != NULL) {
        history_set_next(history, http);
    }
    co.publish = history ? history_publish : http_publish;
    co.listening = history ? NULL : http_listening;
    co.publish_arg = history ? (void *)history : (void *)http;
    co.live_listening = http_listening;
    co.live_arg = http;
    co.metrics = metrics;
    struct cluster *cluster = cluster_start(&co, err, sizeof(err));
    if (cluster == NULL) {
        log_error("%s", err);
        return 1;
    }
    /* With TLS civetweb owns the public port (the front door reads plain
     * HTTP only); without, the front door does and hands civetweb the rest. */
    struct front *front = NULL;
    bool serving = http_start(http, cluster, err, sizeof(err)) == 0;
    if (serving && !tls) {
        struct front_options fo = {
            .listen = cfg.http.listen,
            .backend_port = http_port(http),
            .max_body_bytes = cfg.http.max_body_bytes,
            .max_data_bytes = cfg.http.max_data_bytes,
            .request_timeout_ms = cfg.http.request_timeout_ms,
            .auth = &api_auth,
        };
        front = front_start(cluster, &fo, err, sizeof(err));
        serving = front != NULL;
    }
    if (!serving) {
        log_error("%s", err);
        http_stop(http);
        cluster_stop(cluster);
        http_free(http);
        history_free(history);
        return 1;
    }
    log_info("listening on %s://%s (dashboard from %s)%s%s", tls ? "https" : "http",
             cfg.http.listen, cfg.http.dashboard_dir,
             cfg.spawn.n ? ", supervising local replicas" : "",
             api_auth.on ? ", API token required" : "");

    int sig = 0;
    sigwait(&stop, &sig);
    log_info("signal %d: stopping", sig);
    front_stop(front); /* no new requests; piped connections end here (NULL with TLS) */
    http_stop(http);
    cluster_stop(cluster);
    http_free(http);
    history_free(history);
    metrics_free(metrics);
    if (lock_fd >= 0) {
        close(lock_fd);
    }
    log_info("stopped");
    return 0;
}
