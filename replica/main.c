/*
 * replica/main.c — the `replica` command line: flags, each with an
 * environment-variable twin for compose, then node_run.
 */
#include "flags.h"
#include "storage/identity.h"
#include "storage/member_keys.h"
#include "logging.h"
#include "node.h"
#include "validate.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The one table --help, getopt and the environment are all read from. */
static const struct flag flags[] = {
    {"id", "REPLICA_ID", "ID",
     "replica id: 1-63 of A-Z a-z 0-9 . _ : - (default: the id stored in the data dir; a new "
     "data dir gets HOSTNAME-RANDOM, so a replica that lost its data joins as a new member)"},
    {"name", "REPLICA_NAME", "NAME", "display name (default: reverse DNS of own address, or id)"},
    {"listen", "REPLICA_LISTEN", "IP:PORT",
     "where peers and clients connect (default 0.0.0.0:5000)"},
    {"advertise", "REPLICA_ADVERTISE", "HOST:PORT",
     "address others should use (default hostname:port)"},
    {"peers", "REPLICA_PEERS", "LIST", "host:port,... or one DNS name resolving to every replica"},
    {"initial-size", "REPLICA_INITIAL_SIZE", "N", "size of the first configuration (default 3)"},
    {"data-dir", "REPLICA_DATA_DIR", "DIR",
     "durable log directory, holding the id too (default ./data/ID, or ./data/HOSTNAME without "
     "--id)"},
    {"heartbeat-ms", "REPLICA_HEARTBEAT_MS", "MS", "primary heartbeat interval (default 50)"},
    {"election-min-ms", "REPLICA_ELECTION_MIN_MS", "MS",
     "election timeout lower bound (default 300)"},
    {"election-max-ms", "REPLICA_ELECTION_MAX_MS", "MS",
     "election timeout upper bound, exclusive (default 600)"},
    {"resolve-interval-ms", "REPLICA_RESOLVE_INTERVAL_MS", "MS",
     "how often --peers is re-resolved (default 1000)"},
    {"dead-member-timeout", "REPLICA_DEAD_MEMBER_TIMEOUT", "DURATION",
     "the primary removes a member unreachable this long that discovery no longer lists, "
     "e.g. 30s (default 0: never)"},
    {"max-frame-bytes", "REPLICA_MAX_FRAME_BYTES", "BYTES",
     "largest accepted frame (default 16777216)"},
    {"max-request-bytes", "REPLICA_MAX_REQUEST_BYTES", "BYTES",
     "largest client request (default 1048576)"},
    {"session-max", "REPLICA_SESSION_MAX", "N",
     "client ids remembered so a retry applies once (default 65536)"},
    {"session-ttl", "REPLICA_SESSION_TTL", "DURATION",
     "... for at most this long after the newest entry, e.g. 1h (default 1h; 0: no limit)"},
    {"retain", "REPLICA_RETAIN", "N|SIZE",
     "keep the newest N entries (e.g. 1000000) or about SIZE of log (e.g. 2GiB, 500MB); older "
     "ones are replaced by a snapshot (default: keep everything)"},
    {"segment-bytes", "REPLICA_SEGMENT_BYTES", "BYTES",
     "size of one log segment file (default 67108864)"},
    {"cluster-secret-file", "REPLICA_CLUSTER_SECRET_FILE", "PATH",
     "the cluster's shared secret: every member, the coordinator and replctl prove it on every "
     "connection (at least 16 bytes; see README, Security)"},
    {"insecure", "REPLICA_INSECURE", NULL,
     "listen on a non-loopback address without --cluster-secret-file: whoever reaches the port "
     "can join the cluster and act as any member"},
    {"log-level", "REPLICA_LOG_LEVEL", "LEVEL", "debug, info, warn or error (default info)"},
    {"parent-pid", "REPLICA_PARENT_PID", "PID", "exit when this process (a supervisor) is gone"},
};

/* --retain: a count of entries, or a size with its unit (B, KB, MB, GB,
 * KiB, MiB, GiB). */
static int parse_retain(const char *v, struct node_options *o)
{
    static const struct {
        const char *unit;
        unsigned long long mult;
    } units[] = {{"GiB", 1ull << 30},
                 {"MiB", 1ull << 20},
                 {"KiB", 1ull << 10},
                 {"GB", 1000000000ull},
                 {"MB", 1000000ull},
                 {"KB", 1000ull},
                 {"B", 1}};
    size_t len = strlen(v);
    unsigned long long u;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t ul = strlen(units[i].unit);
        if (len > ul && strcmp(v + len - ul, units[i].unit) == 0) {
            char num[32];
            if (len - ul >= sizeof(num)) {
                return -1;
            }
            memcpy(num, v, len - ul);
            num[len - ul] = '\0';
            if (flags_uint(num, 1, (1ull << 50) / units[i].mult, &u) != 0) {
                return -1;
            }
            o->retain_bytes = u * units[i].mult;
            o->retain_entries = 0;
            return 0;
        }
    }
    if (flags_uint(v, 1, LIMIT_COUNTER_MAX, &u) != 0) {
        return -1;
    }
    o->retain_entries = u;
    o->retain_bytes = 0;
    return 0;
}

/* Ask DNS itself for the PTR record of addr: getnameinfo would answer from
 * /etc/hosts, which in a container maps our address to the container id. */
static int ptr_lookup(struct in_addr addr, char *out, size_t len)
{
    const unsigned char *b = (const unsigned char *)&addr.s_addr;
    char q[64];
    snprintf(q, sizeof(q), "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
    res_init();
    _res.retrans = 1; /* seconds: a missing DNS server must not stall start */
    _res.retry = 1;
    unsigned char ans[1024];
    int n = res_query(q, ns_c_in, ns_t_ptr, ans, sizeof(ans));
    ns_msg msg;
    if (n < 0 || ns_initparse(ans, n, &msg) < 0) {
        return -1;
    }
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && ns_rr_type(rr) == ns_t_ptr &&
            dn_expand(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr), out, (int)len) >= 0) {
            return 0;
        }
    }
    return -1;
}

/* Reverse DNS of our own address: compose answers project_replica_N. */
static void default_name(const char *host, char *out, size_t len, const char *fallback)
{
    snprintf(out, len, "%s", fallback);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        return;
    }
    struct in_addr addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    char name[256];
    if ((ntohl(addr.s_addr) >> 24) == 127 || ptr_lookup(addr, name, sizeof(name)) != 0) {
        return;
    }
    char *dot = strchr(name, '.');
    if (dot) {
        *dot = '\0';
    }
    snprintf(out, len, "%.*s", (int)len - 1, name);
}

/* mkdir -p for the data dir's parents; the log creates the last level. */
static int make_parents(const char *path)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return 0;
}

/* 127.0.0.0/8 or ::1: only this host can connect. */
static bool listen_is_loopback(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0;
}

/* What the flags fill in. */
struct replica_args {
    struct node_options o;
    const char *peers;
    const char *secret_file;
    bool insecure;
    int level;
    pid_t parent;
};

/* Each value is checked here, once, against bounds.h; main() then checks
 * how they relate to each other. */
static int apply(void *ctx, const char *name, const char *v)
{
    struct replica_args *a = ctx;
    struct node_options *o = &a->o;
    unsigned long long u;
    if (strcmp(name, "id") == 0) {
        if (!validate_id(v)) {
            return -1;
        }
        snprintf(o->id, sizeof(o->id), "%s", v);
    } else if (strcmp(name, "name") == 0) {
        return flags_text(o->name, sizeof(o->name), v);
    } else if (strcmp(name, "listen") == 0) {
        return flags_text(o->listen, sizeof(o->listen), v);
    } else if (strcmp(name, "advertise") == 0) {
        return flags_text(o->advertise, sizeof(o->advertise), v);
    } else if (strcmp(name, "peers") == 0) {
        a->peers = v;
    } else if (strcmp(name, "cluster-secret-file") == 0) {
        a->secret_file = v;
    } else if (strcmp(name, "insecure") == 0) {
        a->insecure = strcmp(v, "true") == 0;
    } else if (strcmp(name, "data-dir") == 0) {
        return flags_text(o->data_dir, sizeof(o->data_dir), v);
    } else if (strcmp(name, "parent-pid") == 0) {
        if (flags_uint(v, 2, INT32_MAX, &u) != 0) {
            return -1;
        }
        a->parent = (pid_t)u;
    } else if (strcmp(name, "log-level") == 0) {
        a->level = log_level_parse(v);
        return a->level < 0 ? -1 : 0;
    } else if (strcmp(name, "initial-size") == 0) {
        if (flags_uint(v, 1, LIMIT_MEMBERS, &u) != 0) {
            return -1;
        }
        o->initial_size = (unsigned)u;
    } else if (strcmp(name, "dead-member-timeout") == 0) {
        if (flags_duration_ms(v, LIMIT_TIMING_MS_MAX, &u) != 0) {
            return -1;
        }
        o->dead_member_timeout_ms = (unsigned)u;
    } else if (strcmp(name, "session-max") == 0) {
        if (flags_uint(v, 1, 1u << 24, &u) != 0) {
            return -1;
        }
        o->session_max = (unsigned)u;
    } else if (strcmp(name, "session-ttl") == 0) {
        if (flags_duration_ms(v, 30ull * 24 * 3600 * 1000, &u) != 0) {
            return -1;
        }
        o->session_ttl_ms = (unsigned)u;
    } else if (strcmp(name, "retain") == 0) {
        return parse_retain(v, o);
    } else if (strcmp(name, "segment-bytes") == 0) {
        if (flags_uint(v, 4096, 1ull << 34, &u) != 0) {
            return -1;
        }
        o->segment_bytes = u;
    } else if (strcmp(name, "max-frame-bytes") == 0) {
        if (flags_uint(v, LIMIT_FRAME_BYTES_MIN, LIMIT_FRAME_BYTES_MAX, &u) != 0) {
            return -1;
        }
        o->max_frame_bytes = (size_t)u;
    } else if (strcmp(name, "max-request-bytes") == 0) {
        if (flags_uint(v, 1, LIMIT_FRAME_BYTES_MAX, &u) != 0) {
            return -1;
        }
        o->max_request_bytes = (size_t)u;
    } else {
        /* The timings. */
        if (flags_uint(v, 1, LIMIT_TIMING_MS_MAX, &u) != 0) {
            return -1;
        }
        if (strcmp(name, "heartbeat-ms") == 0) {
            o->heartbeat_ms = (unsigned)u;
        } else if (strcmp(name, "election-min-ms") == 0) {
            o->election_min_ms = (unsigned)u;
        } else if (strcmp(name, "election-max-ms") == 0) {
            o->election_max_ms = (unsigned)u;
        } else if (strcmp(name, "resolve-interval-ms") == 0) {
            o->resolve_interval_ms = (unsigned)u;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Catch-up moves 1 MiB batches through memory (read, copied, encoded)
     * again and again. glibc raises its mmap threshold after such blocks
     * are freed and then keeps them in the heap, where freed memory is not
     * given back: a primary streaming a log reached 107 MB resident. A
     * fixed threshold keeps large blocks mapped and returned on free. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    struct replica_args args = {
        .o =
            {
                .initial_size = 3,
                .heartbeat_ms = 50,
                .election_min_ms = 300,
                .election_max_ms = 600,
                .resolve_interval_ms = 1000,
                .max_frame_bytes = 16u << 20,
                .max_request_bytes = 1u << 20,
                .session_ttl_ms = 3600u * 1000,
            },
        .peers = "",
        .level = LOG_INFO,
    };
    snprintf(args.o.listen, sizeof(args.o.listen), "0.0.0.0:5000");
    const struct flag_set fs = {
        .prog = "replica",
        .about = "One replica of a replicacao cluster. Every option can also be set through\n"
                 "the environment variable shown; a flag wins over the environment.",
        .footer = "Exit status: 0 after SIGTERM/SIGINT, 75 after a fail request, 1 on a\n"
                  "fatal error, 2 on bad usage.",
        .flags = flags,
        .n = sizeof(flags) / sizeof(flags[0]),
        .apply = apply,
        .ctx = &args,
    };
    int rc = flags_parse(&fs, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (args.parent != 0) {
        /* A supervisor killed outright must not leave us running. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != args.parent) {
            return 0; /* it died before we could ask */
        }
    }
    struct node_options o = args.o;
    const char *peers = args.peers;
    int level = args.level;
    if (o.election_max_ms <= o.election_min_ms || o.heartbeat_ms >= o.election_min_ms) {
        fprintf(stderr, "replica: need heartbeat < election-min < election-max\n");
        return 2;
    }
    /* One request must fit in one Append, which must fit in one frame. */
    if (o.max_request_bytes > o.max_frame_bytes / 4) {
        fprintf(stderr, "replica: --max-request-bytes must be at most a quarter of "
                        "--max-frame-bytes\n");
        return 2;
    }

    char host[256] = "localhost";
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    /* Without --id the id comes from the data dir (identity.h), whose
     * default is named after the hostname, as the id once was. */
    bool explicit_id = o.id[0] != '\0';
    if (o.data_dir[0] == '\0') {
        snprintf(o.data_dir, sizeof(o.data_dir), "data/%s", explicit_id ? o.id : host);
    }
    if (make_parents(o.data_dir) != 0) {
        fprintf(stderr, "replica: cannot create the parents of %s: %s\n", o.data_dir,
                strerror(errno));
        return 1;
    }
    char err[256];
    bool generated;
    char given[sizeof(o.id)]; /* identity_bind's input and output must not overlap */
    memcpy(given, o.id, sizeof(given));
    if (identity_bind(o.data_dir, given, host, o.id, sizeof(o.id), &generated, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "replica: %s\n", err);
        return 1;
    }
    if (o.name[0] == '\0') {
        /* A stored id is not a name: without reverse DNS, show the host. */
        default_name(host, o.name, sizeof(o.name), explicit_id ? o.id : host);
        if (!validate_text(o.name, strlen(o.name), sizeof(o.name))) {
            snprintf(o.name, sizeof(o.name), "%s", o.id); /* what DNS said is not a name */
        }
    }
    const char *port = strrchr(o.listen, ':');
    if (port == NULL) {
        fprintf(stderr, "replica: --listen wants ip:port\n");
        return 2;
    }
    if (o.advertise[0] == '\0') {
        snprintf(o.advertise, sizeof(o.advertise), "%s%s", host, port);
    }
    if (addr_list_parse(peers, port + 1, &o.peers, err, sizeof(err)) != 0) {
        fprintf(stderr, "replica: --peers: %s\n", err);
        return 2;
    }
    log_setup(o.id, (enum log_level)level);
    if (generated) {
        log_info("new data dir %s: this replica is the new member %s", o.data_dir, o.id);
    }
    struct peer_auth auth;
    struct member_keys *keys = NULL;
    if (args.secret_file != NULL && args.secret_file[0] != '\0') {
        if (peer_auth_load(&auth, args.secret_file, err, sizeof(err)) != 0 ||
            member_keys_open(o.data_dir, o.id, &auth, &keys, err, sizeof(err)) != 0) {
            log_error("%s", err);
            return 1;
        }
        o.auth = &auth;
    } else if (!listen_is_loopback(o.listen)) {
        if (!args.insecure) {
            log_error("refusing to listen on %s without --cluster-secret-file: whoever reaches "
                      "it could join the cluster or speak as its members. Give the cluster a "
                      "secret (README, Security), listen on 127.0.0.1, or pass --insecure.",
                      o.listen);
            return 2;
        }
        log_warn("--insecure: listening on %s with no cluster secret; whoever reaches it can "
                 "join the cluster and act as any member",
                 o.listen);
    }
    rc = node_run(&o);
    member_keys_free(keys);
    return rc;
}
