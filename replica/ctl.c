/*
 * replica/ctl.c — `replctl`, a command-line client for one replica or a
 * list of them, speaking the wire protocol directly (no coordinator):
 *
 *   replctl -a 127.0.0.1:5001 status
 *   replctl -a 127.0.0.1:5001,127.0.0.1:5002 put [-i CLIENT_ID] DATA
 *   replctl -a 127.0.0.1:5001 read [-f processed|synced] [-s AFTER] [-n LIMIT]
 *   replctl -a 127.0.0.1:5001 watch
 *   replctl -a 127.0.0.1:5001 fail
 *
 * `put` finds the primary itself: it follows "not primary" answers and
 * retries with the same client id until committed or out of time, so it is
 * applied once whatever fails over meanwhile.
 */
#include "addr.h"
#include "client.h"
#include "clock.h"
#include "flags.h"
#include "validate.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: replctl -a ADDR[,ADDR...] [-t TIMEOUT_MS] COMMAND\n\n"
                 "commands:\n"
                 "  status                       one replica's view (role, epoch, indices, peers)\n"
                 "  put [-i CLIENT_ID] DATA      replicate DATA; prints index, epoch, primary\n"
                 "  read [-f processed|synced] [-s AFTER] [-n LIMIT]   committed entries\n"
                 "  watch                        stream events until interrupted\n"
                 "  fail                         make the replica exit with status 75\n");
}

static int cmd_status(struct client *c, int timeout)
{
    char err[256];
    Envelope *r = client_call_status(c, timeout, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "replctl: status: %s\n", err);
        return 1;
    }
    Replicacao__Status *s = r->status;
    printf("id=%s name=%s address=%s role=%s epoch=%llu primary=%s last_index=%llu "
           "commit_index=%llu processed=%llu synced=%llu heartbeat_age_ms=%lld voter=%d\n",
           s->id, s->name, s->address, s->role, (unsigned long long)s->epoch, s->primary,
           (unsigned long long)s->last_index, (unsigned long long)s->commit_index,
           (unsigned long long)s->processed, (unsigned long long)s->synced,
           (long long)s->heartbeat_age_ms, s->voter);
    for (size_t i = 0; i < s->n_peers; i++) {
        Replicacao__PeerStatus *p = s->peers[i];
        printf("peer id=%s address=%s voter=%d connected=%d match_index=%llu last_seen_ms=%lld\n",
               p->id, p->address, p->voter, p->connected, (unsigned long long)p->match_index,
               (long long)p->last_seen_ms);
    }
    wire_free(r);
    return 0;
}

/* Try every address until one answers OK, following primary hints. */
static int cmd_put(const struct addr_list *addrs, const char *client_id, const char *data,
                   int timeout)
{
    int64_t deadline = clock_mono_ms() + timeout;
    char hint[256] = "";
    unsigned next = 0;
    char err[256] = "no replica answered";
    while (clock_mono_ms() < deadline) {
        char target[300];
        if (hint[0] != '\0') {
            snprintf(target, sizeof(target), "%s", hint);
            hint[0] = '\0';
        } else {
            const struct addr_item *it = &addrs->items[next++ % addrs->n];
            snprintf(target, sizeof(target), "%s:%s", it->host, it->port);
        }
        struct client c;
        if (client_connect(&c, target, "replctl", 1000, err, sizeof(err)) != 0) {
            usleep(20000);
            continue;
        }
        int left = (int)(deadline - clock_mono_ms());
        Envelope *r = client_call_request(&c, client_id, data, strlen(data),
                                          left > 3000 ? 3000 : left, err, sizeof(err));
        client_close(&c);
        if (r == NULL) {
            continue;
        }
        Replicacao__ClientReply *rep = r->client_reply;
        if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__OK) {
            printf("index=%llu epoch=%llu primary=%s id=%s\n", (unsigned long long)rep->index,
                   (unsigned long long)rep->epoch, rep->primary, client_id);
            wire_free(r);
            return 0;
        }
        if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__REJECTED) {
            fprintf(stderr, "replctl: rejected: %s\n", rep->message);
            wire_free(r);
            return 1;
        }
        if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY &&
            rep->primary_address[0] != '\0') {
            snprintf(hint, sizeof(hint), "%s", rep->primary_address);
        } else {
            usleep(20000); /* no primary yet: give the election a moment */
        }
        snprintf(err, sizeof(err), "%s", rep->message);
        wire_free(r);
    }
    fprintf(stderr, "replctl: put timed out: %s\n", err);
    return 1;
}

static int cmd_read(struct client *c, int filter, unsigned long long after, unsigned limit,
                    int timeout)
{
    char err[256];
    Envelope *r = client_call_read(c, after, limit, filter, timeout, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "replctl: read: %s\n", err);
        return 1;
    }
    Replicacao__ReadReply *rr = r->read_reply;
    printf("commit_index=%llu total=%llu\n", (unsigned long long)rr->commit_index,
           (unsigned long long)rr->total);
    for (size_t i = 0; i < rr->n_entries; i++) {
        Replicacao__Entry *e = rr->entries[i];
        printf("%llu %llu %s %s %.*s\n", (unsigned long long)e->index, (unsigned long long)e->epoch,
               e->primary, e->client_id, (int)e->data.len, (const char *)e->data.data);
    }
    wire_free(r);
    return 0;
}

static int cmd_watch(struct client *c)
{
    char err[256];
    if (client_subscribe(c) != 0) {
        fprintf(stderr, "replctl: subscribe failed\n");
        return 1;
    }
    for (;;) {
        Envelope *r = client_recv(c, 3600 * 1000, err, sizeof(err));
        if (r == NULL) {
            fprintf(stderr, "replctl: watch: %s\n", err);
            return 1;
        }
        if (r->body_case == REPLICACAO__ENVELOPE__BODY_EVENT) {
            Replicacao__Event *e = r->event;
            printf("%lld %s replica=%s subject=%s epoch=%llu index=%llu %s\n",
                   (long long)e->time_ms, e->type, e->replica, e->subject,
                   (unsigned long long)e->epoch, (unsigned long long)e->index, e->detail);
            fflush(stdout);
        }
        wire_free(r);
    }
}

int main(int argc, char **argv)
{
    const char *addr_arg = NULL, *client_id = NULL, *filter_name = NULL;
    int timeout = 5000;
    unsigned long long after = 0, u;
    unsigned limit = LIMIT_READ_DEFAULT;
    int opt;
    while ((opt = getopt(argc, argv, "+a:t:i:f:s:n:h")) != -1) {
        switch (opt) {
        case 'a':
            addr_arg = optarg;
            break;
        case 't':
            if (flags_uint(optarg, 1, LIMIT_TIMING_MS_MAX, &u) != 0) {
                fprintf(stderr, "replctl: -t wants milliseconds (1 to %u)\n", LIMIT_TIMING_MS_MAX);
                return 2;
            }
            timeout = (int)u;
            break;
        case 'i':
            client_id = optarg;
            break;
        case 'f':
            filter_name = optarg;
            break;
        case 's':
            if (flags_uint(optarg, 0, UINT64_MAX, &after) != 0) {
                fprintf(stderr, "replctl: -s wants an index (a number)\n");
                return 2;
            }
            break;
        case 'n':
            if (flags_uint(optarg, 1, LIMIT_READ_MAX, &u) != 0) {
                fprintf(stderr, "replctl: -n wants 1 to %d\n", LIMIT_READ_MAX);
                return 2;
            }
            limit = (unsigned)u;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (addr_arg == NULL || optind >= argc || timeout <= 0) {
        usage(stderr);
        return 2;
    }
    struct addr_list addrs;
    char err[256];
    if (addr_list_parse(addr_arg, "5000", &addrs, err, sizeof(err)) != 0 || addrs.n == 0) {
        fprintf(stderr, "replctl: -a: %s\n", addrs.n == 0 ? "no address" : err);
        return 2;
    }
    const char *cmd = argv[optind];
    /* Options may also follow the command: put -i ID DATA, read -f synced. */
    optind++;
    while ((opt = getopt(argc, argv, "i:f:s:n:")) != -1) {
        switch (opt) {
        case 'i':
            client_id = optarg;
            break;
        case 'f':
            filter_name = optarg;
            break;
        case 's':
            if (flags_uint(optarg, 0, UINT64_MAX, &after) != 0) {
                fprintf(stderr, "replctl: -s wants an index (a number)\n");
                return 2;
            }
            break;
        case 'n':
            if (flags_uint(optarg, 1, LIMIT_READ_MAX, &u) != 0) {
                fprintf(stderr, "replctl: -n wants 1 to %d\n", LIMIT_READ_MAX);
                return 2;
            }
            limit = (unsigned)u;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (client_id != NULL && !validate_client_id(client_id, strlen(client_id))) {
        fprintf(stderr,
                "replctl: -i: a client id is 1 to %d bytes of UTF-8 without control "
                "characters\n",
                LIMIT_CLIENT_ID_BYTES - 1);
        return 2;
    }
    if (strcmp(cmd, "put") == 0) {
        if (optind >= argc) {
            usage(stderr);
            return 2;
        }
        char generated[64];
        if (client_id == NULL) {
            snprintf(generated, sizeof(generated), "ctl-%d-%lld", getpid(),
                     (long long)clock_wall_ms());
            client_id = generated;
        }
        return cmd_put(&addrs, client_id, argv[optind], timeout);
    }
    char target[300];
    snprintf(target, sizeof(target), "%s:%s", addrs.items[0].host, addrs.items[0].port);
    struct client c;
    if (client_connect(&c, target, "replctl", timeout, err, sizeof(err)) != 0) {
        fprintf(stderr, "replctl: %s\n", err);
        return 1;
    }
    int rc = 2;
    if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(&c, timeout);
    } else if (strcmp(cmd, "read") == 0) {
        int filter = 0;
        if (filter_name != NULL) {
            filter = strcmp(filter_name, "processed") == 0 ? 1
                     : strcmp(filter_name, "synced") == 0  ? 2
                                                           : -1;
        }
        if (filter < 0) {
            fprintf(stderr, "replctl: -f wants processed or synced\n");
        } else {
            rc = cmd_read(&c, filter, after, limit, timeout);
        }
    } else if (strcmp(cmd, "watch") == 0) {
        rc = cmd_watch(&c);
    } else if (strcmp(cmd, "fail") == 0) {
        rc = client_send_fail(&c, "replctl fail") == 0 ? 0 : 1;
    } else {
        usage(stderr);
    }
    client_close(&c);
    return rc;
}
