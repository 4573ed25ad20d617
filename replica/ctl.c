/*
 * replica/ctl.c — `replctl`, a command-line client for one replica or a
 * list of them, speaking the wire protocol directly (no coordinator):
 *
 *   replctl -a 127.0.0.1:5001 status
 *   replctl -a 127.0.0.1:5001,127.0.0.1:5002 put [-i CLIENT_ID] DATA
 *   replctl -a 127.0.0.1:5001,127.0.0.1:5002 read [-c linearizable|serializable]
 *                                          [-f processed|synced] [-s AFTER] [-n LIMIT]
 *   replctl -a 127.0.0.1:5001 watch
 *   replctl -a 127.0.0.1:5001 fail
 *   replctl -a 127.0.0.1:5001 members
 *   replctl -a 127.0.0.1:5001 ready
 *   replctl -a 127.0.0.1:5001,127.0.0.1:5002 remove r3
 *   replctl -a 127.0.0.1:5001 force-config [--keep r2,r3]      (UNSAFE)
 *
 * `put` and `remove` find the primary themselves: they follow "not
 * primary" answers (and, for `remove`, "busy") until answered or out of
 * time; `put` retries with the same client id, so it is applied once
 * whatever fails over meanwhile.
 */
#include "addr.h"
#include "client.h"
#include "clock.h"
#include "flags.h"
#include "peer_auth.h"
#include "validate.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: replctl -a ADDR[,ADDR...] [-t TIMEOUT_MS] [--cluster-secret-file PATH] "
                 "COMMAND\n\n"
                 "The cluster's secret is read from --cluster-secret-file, else from\n"
                 "$REPLCTL_CLUSTER_SECRET_FILE, else from $REPLICA_CLUSTER_SECRET_FILE (so it\n"
                 "works as is inside a replica's container). Options may also follow the\n"
                 "command.\n\n"
                 "commands:\n"
                 "  status                       one replica's view (role, epoch, indices, peers)\n"
                 "  put [-i CLIENT_ID] DATA      replicate DATA; prints index, epoch, primary\n"
                 "  read [-c linearizable|serializable] [-f processed|synced] [-s AFTER]\n"
                 "       [-n LIMIT]              committed entries; linearizable (default):\n"
                 "                               from the primary (found from the addresses),\n"
                 "                               everything acknowledged before the call;\n"
                 "                               serializable: the first address's own view\n"
                 "  watch                        stream events until interrupted\n"
                 "  fail                         make the replica exit with status 75\n"
                 "  members                      the configuration that replica holds\n"
                 "  ready                        exit 0 when the replica is primary or hears a\n"
                 "                               primary (the container health check); 1 with\n"
                 "                               the reason when no primary is in sight\n"
                 "  remove ID                    remove member ID (asks the primary); exit 3\n"
                 "                               when ID is no member, 4 when removing it would\n"
                 "                               leave no reachable majority\n"
                 "  force-config [--keep ID,...] UNSAFE recovery from a lost majority: the\n"
                 "                               replica becomes the only voter, the ones kept\n"
                 "                               (default: those it reaches) its learners\n");
}

/* Exit statuses of `remove` beyond 0 (done), 1 (failed) and 2 (usage). */
#define EXIT_NOT_MEMBER 3
#define EXIT_NO_QUORUM  4

/* "a,b,c" of the configuration's voters (want_voter) or learners. */
static void member_list(const Replicacao__Status *s, bool want_voter, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s->n_members && used < len; i++) {
        if (s->members[i]->voter == want_voter) {
            used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "",
                                     s->members[i]->id);
        }
    }
}

static void print_config(const Replicacao__Status *s)
{
    char voters[LIMIT_MEMBERS * LIMIT_ID_BYTES], learners[LIMIT_MEMBERS * LIMIT_ID_BYTES];
    char removed[LIMIT_MEMBERS * LIMIT_ID_BYTES];
    member_list(s, true, voters, sizeof(voters));
    member_list(s, false, learners, sizeof(learners));
    size_t used = 0;
    removed[0] = '\0';
    for (size_t i = 0; i < s->n_removed && used < sizeof(removed); i++) {
        used += (size_t)snprintf(removed + used, sizeof(removed) - used, "%s%s", used ? "," : "",
                                 s->removed[i]);
    }
    printf("cluster_id=%s config_index=%llu voters=%s learners=%s removed=%s\n", s->cluster_id,
           (unsigned long long)s->config_index, voters, learners, removed);
}

static int cmd_members(struct client *c, int timeout)
{
    char err[256];
    Envelope *r = client_call_status(c, timeout, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "replctl: members: %s\n", err);
        return 1;
    }
    Replicacao__Status *s = r->status;
    print_config(s);
    for (size_t i = 0; i < s->n_members; i++) {
        printf("member id=%s voter=%d\n", s->members[i]->id, s->members[i]->voter);
    }
    wire_free(r);
    return 0;
}

/* Finding the primary for a call: the addresses in turn, or first where the
 * last "not primary" answer pointed, until the deadline. put, remove and
 * linearizable reads all go this way. */
struct seeker {
    const struct addr_list *addrs;
    unsigned next;
    char hint[256];
    int64_t deadline;
};

static struct seeker seeker_new(const struct addr_list *addrs, int timeout)
{
    return (struct seeker){.addrs = addrs, .deadline = clock_mono_ms() + timeout};
}

/* Connect to the next replica to try; false once time is up. */
static bool seek_connect(struct seeker *s, struct client *c, char *err, size_t errlen)
{
    while (clock_mono_ms() < s->deadline) {
        char target[300];
        if (s->hint[0] != '\0') {
            snprintf(target, sizeof(target), "%s", s->hint);
            s->hint[0] = '\0';
        } else {
            const struct addr_item *it = &s->addrs->items[s->next++ % s->addrs->n];
            snprintf(target, sizeof(target), "%s:%s", it->host, it->port);
        }
        if (client_connect(c, target, "replctl", 1000, err, errlen) == 0) {
            return true;
        }
        usleep(20000);
    }
    return false;
}

/* How long one call may wait: what is left, at most 3 s, at least 1 ms. */
static int seek_left(const struct seeker *s)
{
    int64_t left = s->deadline - clock_mono_ms();
    return left > 3000 ? 3000 : left > 0 ? (int)left : 1;
}

/* "Not primary": go where it points, or give the election a moment. */
static void seek_follow(struct seeker *s, const char *primary_address)
{
    if (primary_address[0] != '\0') {
        snprintf(s->hint, sizeof(s->hint), "%s", primary_address);
    } else {
        usleep(20000);
    }
}

/* Ask the primary to remove `id`: try every address, follow "not primary"
 * hints, wait out "busy" and elections, until answered or out of time. */
static int cmd_remove(const struct addr_list *addrs, const char *id, int timeout)
{
    struct seeker sk = seeker_new(addrs, timeout);
    char err[LIMIT_TEXT_BYTES] = "no replica answered";
    struct client c;
    while (seek_connect(&sk, &c, err, sizeof(err))) {
        Envelope *r = client_call_remove_member(&c, id, seek_left(&sk), err, sizeof(err));
        client_close(&c);
        if (r == NULL) {
            continue;
        }
        Replicacao__ClientReply *rep = r->client_reply;
        int rc = -1;
        switch (rep->status) {
        case REPLICACAO__CLIENT_REPLY__STATUS__OK:
            printf("removing=%s index=%llu primary=%s\n", id, (unsigned long long)rep->index,
                   rep->primary);
            rc = 0;
            break;
        case REPLICACAO__CLIENT_REPLY__STATUS__NOT_FOUND:
            fprintf(stderr, "replctl: remove: %s is not a member%s%s\n", id,
                    rep->message[0] ? ": " : "", rep->message);
            rc = EXIT_NOT_MEMBER;
            break;
        case REPLICACAO__CLIENT_REPLY__STATUS__NO_QUORUM:
            fprintf(
                stderr,
                "replctl: remove: removing %s would leave no reachable majority of voters%s%s\n",
                id, rep->message[0] ? ": " : "", rep->message);
            rc = EXIT_NO_QUORUM;
            break;
        case REPLICACAO__CLIENT_REPLY__STATUS__REJECTED:
            fprintf(stderr, "replctl: remove: rejected: %s\n", rep->message);
            rc = 1;
            break;
        case REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY:
            seek_follow(&sk, rep->primary_address);
            break;
        default: /* BUSY: another change is in progress; UNKNOWN */
            usleep(100000);
            break;
        }
        snprintf(err, sizeof(err), "%s", rep->message[0] ? rep->message : "no primary");
        wire_free(r);
        if (rc >= 0) {
            return rc;
        }
    }
    fprintf(stderr, "replctl: remove timed out: %s\n", err);
    return 1;
}

/* "a,b" into ids (validated); -1 with a message on a bad list. */
static int parse_keep(const char *arg, char ids[][LIMIT_ID_BYTES], size_t max, size_t *n)
{
    *n = 0;
    const char *p = arg;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (*n == max || len >= LIMIT_ID_BYTES) {
                fprintf(stderr, "replctl: --keep: at most %zu ids of at most %d bytes\n", max,
                        LIMIT_ID_BYTES - 1);
                return -1;
            }
            memcpy(ids[*n], p, len);
            ids[*n][len] = '\0';
            if (!validate_id(ids[*n])) {
                fprintf(stderr,
                        "replctl: --keep: '%s' is not a replica id (1 to %d of A-Z a-z 0-9 . _ : "
                        "-)\n",
                        ids[*n], LIMIT_ID_BYTES - 1);
                return -1;
            }
            (*n)++;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* UNSAFE: make the replica the only voter of a new configuration. */
static int cmd_force_config(struct client *c, const char *keep_arg, int timeout)
{
    char keep[LIMIT_MEMBERS - 1][LIMIT_ID_BYTES];
    size_t n = 0;
    char err[LIMIT_TEXT_BYTES];
    Envelope *st = client_call_status(c, timeout, err, sizeof(err));
    if (st == NULL) {
        fprintf(stderr, "replctl: force-config: status: %s\n", err);
        return 1;
    }
    char self[LIMIT_ID_BYTES];
    snprintf(self, sizeof(self), "%s", st->status->id);
    if (keep_arg != NULL) {
        if (parse_keep(keep_arg, keep, LIMIT_MEMBERS - 1, &n) != 0) {
            wire_free(st);
            return 2;
        }
    } else {
        /* Default: every replica it reaches now. */
        for (size_t i = 0; i < st->status->n_peers && n < LIMIT_MEMBERS - 1; i++) {
            const Replicacao__PeerStatus *p = st->status->peers[i];
            if (p->connected && strcmp(p->id, self) != 0) {
                snprintf(keep[n++], LIMIT_ID_BYTES, "%s", p->id);
            }
        }
    }
    char list[LIMIT_MEMBERS * LIMIT_ID_BYTES] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "", keep[i]);
    }
    fprintf(stderr,
            "replctl: *************************************************************\n"
            "replctl: WARNING: force-config is UNSAFE. %s becomes the ONLY voter of a new\n"
            "replctl: configuration (learners: %s). Writes acknowledged by a majority\n"
            "replctl: that %s does not hold are LOST for good, and the voters left out\n"
            "replctl: must never come back with their old data. Use it only when a\n"
            "replctl: majority of voters is gone for good.\n"
            "replctl: *************************************************************\n",
            self, n ? list : "none", self);
    print_config(st->status);
    wire_free(st);

    const char *ptrs[LIMIT_MEMBERS];
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = keep[i];
    }
    Envelope *r = client_call_force_config(c, ptrs, n, timeout, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "replctl: force-config: %s\n", err);
        return 1;
    }
    Replicacao__ClientReply *rep = r->client_reply;
    int rc = 0;
    if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__OK) {
        printf("forced: voter=%s learners=%s index=%llu epoch=%llu\n", self, list,
               (unsigned long long)rep->index, (unsigned long long)rep->epoch);
    } else {
        fprintf(stderr, "replctl: force-config refused: %s\n",
                rep->message[0] ? rep->message : "no reason given");
        rc = 1;
    }
    wire_free(r);
    return rc;
}

/* Readiness for an orchestrator's health check: this replica is part of a
 * working cluster, i.e. it is the primary, or it heard from one within a
 * few election timeouts. A cluster that cannot elect (no majority left)
 * makes every replica unready, which is what an operator must see. */
#define READY_MAX_AGE_MS 3000
static int cmd_ready(struct client *c, int timeout)
{
    char err[256];
    Envelope *r = client_call_status(c, timeout, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "replctl: ready: %s\n", err);
        return 1;
    }
    const Replicacao__Status *s = r->status;
    int rc = 1;
    if (strcmp(s->role, "removed") == 0) {
        printf("not ready: %s was removed from the configuration\n", s->id);
    } else if (strcmp(s->role, "primary") == 0) {
        printf("ready: primary of epoch %llu\n", (unsigned long long)s->epoch);
        rc = 0;
    } else if (s->primary[0] != '\0' && s->heartbeat_age_ms >= 0 &&
               s->heartbeat_age_ms < READY_MAX_AGE_MS) {
        printf("ready: %s following %s (heard %lld ms ago)\n", s->role, s->primary,
               (long long)s->heartbeat_age_ms);
        rc = 0;
    } else {
        printf("not ready: %s with no primary heard for %s (epoch %llu); a majority of the "
               "voters may be unreachable\n",
               s->role, s->heartbeat_age_ms < 0 ? "ever" : "over 3 s",
               (unsigned long long)s->epoch);
    }
    wire_free(r);
    return rc;
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
    print_config(s);
    for (size_t i = 0; i < s->n_peers; i++) {
        Replicacao__PeerStatus *p = s->peers[i];
        printf("peer id=%s address=%s voter=%d member=%d listed=%d connected=%d match_index=%llu "
               "last_seen_ms=%lld\n",
               p->id, p->address, p->voter, p->member, p->listed, p->connected,
               (unsigned long long)p->match_index, (long long)p->last_seen_ms);
    }
    wire_free(r);
    return 0;
}

/* Try every address until one answers OK, following primary hints. */
static int cmd_put(const struct addr_list *addrs, const char *client_id, const char *data,
                   int timeout)
{
    struct seeker sk = seeker_new(addrs, timeout);
    char err[256] = "no replica answered";
    struct client c;
    while (seek_connect(&sk, &c, err, sizeof(err))) {
        Envelope *r = client_call_request(&c, client_id, data, strlen(data), seek_left(&sk), err,
                                          sizeof(err));
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
        seek_follow(&sk, rep->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY
                             ? rep->primary_address
                             : "");
        snprintf(err, sizeof(err), "%s", rep->message);
        wire_free(r);
    }
    fprintf(stderr, "replctl: put timed out: %s\n", err);
    return 1;
}

/* A read at `consistency`; a linearizable one follows "not primary" hints
 * through the addresses (and waits out elections) until the primary
 * answers or time is up. */
static int cmd_read(const struct addr_list *addrs, int consistency, int filter,
                    unsigned long long after, unsigned limit, int timeout)
{
    struct seeker sk = seeker_new(addrs, timeout);
    char err[LIMIT_TEXT_BYTES] = "no replica answered";
    Envelope *r = NULL;
    struct client c;
    while (r == NULL && seek_connect(&sk, &c, err, sizeof(err))) {
        r = client_call_read_at(&c, after, limit, filter, consistency, seek_left(&sk), err,
                                sizeof(err));
        client_close(&c);
        if (r != NULL && r->read_reply->status != REPLICACAO__CLIENT_REPLY__STATUS__OK) {
            snprintf(err, sizeof(err), "%s",
                     r->read_reply->message[0] ? r->read_reply->message : "not served");
            seek_follow(&sk, r->read_reply->primary_address);
            wire_free(r);
            r = NULL;
        }
        if (consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__SERIALIZABLE) {
            break; /* the first replica's own view, or nothing */
        }
    }
    if (r == NULL) {
        fprintf(stderr, "replctl: read: %s\n", err);
        return 1;
    }
    Replicacao__ReadReply *rr = r->read_reply;
    printf("commit_index=%llu total=%llu consistency=%s\n", (unsigned long long)rr->commit_index,
           (unsigned long long)rr->total,
           rr->consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE ? "linearizable"
                                                                                  : "serializable");
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

/* What the options say, before and after the command alike. */
struct ctl_args {
    const char *addr_arg, *client_id, *filter_name, *level, *keep, *secret_file;
    int timeout;
    unsigned long long after;
    unsigned limit;
};

/* One option: 0 taken, 1 --help (printed), 2 bad (said why). */
static int take_option(struct ctl_args *a, int opt, const char *arg)
{
    unsigned long long u;
    switch (opt) {
    case 'a':
        a->addr_arg = arg;
        return 0;
    case 'S':
        a->secret_file = arg;
        return 0;
    case 'c':
        a->level = arg;
        return 0;
    case 'k':
        a->keep = arg;
        return 0;
    case 'i':
        a->client_id = arg;
        return 0;
    case 'f':
        a->filter_name = arg;
        return 0;
    case 't':
        if (flags_uint(arg, 1, LIMIT_TIMING_MS_MAX, &u) != 0) {
            fprintf(stderr, "replctl: -t wants milliseconds (1 to %u)\n", LIMIT_TIMING_MS_MAX);
            return 2;
        }
        a->timeout = (int)u;
        return 0;
    case 's':
        if (flags_uint(arg, 0, UINT64_MAX, &a->after) != 0) {
            fprintf(stderr, "replctl: -s wants an index (a number)\n");
            return 2;
        }
        return 0;
    case 'n':
        if (flags_uint(arg, 1, LIMIT_READ_MAX, &u) != 0) {
            fprintf(stderr, "replctl: -n wants 1 to %d\n", LIMIT_READ_MAX);
            return 2;
        }
        a->limit = (unsigned)u;
        return 0;
    case 'h':
        usage(stdout);
        return 1;
    default:
        usage(stderr);
        return 2;
    }
}

int main(int argc, char **argv)
{
    struct ctl_args a = {.timeout = 5000, .limit = LIMIT_READ_DEFAULT};
    a.secret_file = getenv("REPLCTL_CLUSTER_SECRET_FILE");
    if (a.secret_file == NULL || a.secret_file[0] == '\0') {
        a.secret_file = getenv("REPLICA_CLUSTER_SECRET_FILE");
    }
    static const struct option longopts[] = {{"cluster-secret-file", required_argument, NULL, 'S'},
                                             {"keep", required_argument, NULL, 'k'},
                                             {NULL, 0, NULL, 0}};
    /* Options come before the command and may also follow it: put -i ID
     * DATA, read -f synced, force-config --keep r2,r3. */
    int opt, rc;
    while ((opt = getopt_long(argc, argv, "+a:t:i:f:c:s:n:k:h", longopts, NULL)) != -1) {
        if ((rc = take_option(&a, opt, optarg)) != 0) {
            return rc == 1 ? 0 : 2;
        }
    }
    if (a.addr_arg == NULL || optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    optind++;
    while ((opt = getopt_long(argc, argv, "a:t:i:f:c:s:n:k:h", longopts, NULL)) != -1) {
        if ((rc = take_option(&a, opt, optarg)) != 0) {
            return rc == 1 ? 0 : 2;
        }
    }
    struct addr_list addrs;
    char err[256];
    if (addr_list_parse(a.addr_arg, "5000", &addrs, err, sizeof(err)) != 0 || addrs.n == 0) {
        fprintf(stderr, "replctl: -a: %s\n", addrs.n == 0 ? "no address" : err);
        return 2;
    }
    static struct peer_auth auth; /* client_use_auth keeps a pointer */
    if (a.secret_file != NULL && a.secret_file[0] != '\0') {
        if (peer_auth_load(&auth, a.secret_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "replctl: %s\n", err);
            return 2;
        }
        client_use_auth(&auth);
    }
    const char *client_id = a.client_id, *filter_name = a.filter_name, *level = a.level;
    const char *keep = a.keep;
    int timeout = a.timeout;
    unsigned long long after = a.after;
    unsigned limit = a.limit;
    if (keep != NULL && strcmp(cmd, "force-config") != 0) {
        fprintf(stderr, "replctl: --keep goes with force-config only\n");
        return 2;
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
    if (strcmp(cmd, "remove") == 0) {
        if (optind >= argc) {
            usage(stderr);
            return 2;
        }
        if (!validate_id(argv[optind])) {
            fprintf(stderr,
                    "replctl: remove: '%s' is not a replica id (1 to %d of A-Z a-z 0-9 . _ "
                    ": -)\n",
                    argv[optind], LIMIT_ID_BYTES - 1);
            return 2;
        }
        return cmd_remove(&addrs, argv[optind], timeout);
    }
    if (strcmp(cmd, "read") == 0) {
        int filter = 0, consistency = REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE;
        if (filter_name != NULL) {
            filter = strcmp(filter_name, "processed") == 0 ? 1
                     : strcmp(filter_name, "synced") == 0  ? 2
                                                           : -1;
        }
        if (level != NULL) {
            consistency = strcmp(level, "linearizable") == 0
                              ? REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE
                          : strcmp(level, "serializable") == 0
                              ? REPLICACAO__READ_REQUEST__CONSISTENCY__SERIALIZABLE
                              : -1;
        }
        if (filter < 0 || consistency < 0) {
            fprintf(stderr, "replctl: -f wants processed or synced, -c linearizable or "
                            "serializable\n");
            return 2;
        }
        return cmd_read(&addrs, consistency, filter, after, limit, timeout);
    }
    if (level != NULL) {
        fprintf(stderr, "replctl: -c goes with read only\n");
        return 2;
    }
    char target[300];
    snprintf(target, sizeof(target), "%s:%s", addrs.items[0].host, addrs.items[0].port);
    struct client c;
    if (client_connect(&c, target, "replctl", timeout, err, sizeof(err)) != 0) {
        fprintf(stderr, "replctl: %s\n", err);
        return 1;
    }
    rc = 2;
    if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(&c, timeout);
    } else if (strcmp(cmd, "watch") == 0) {
        rc = cmd_watch(&c);
    } else if (strcmp(cmd, "fail") == 0) {
        rc = client_send_fail(&c, "replctl fail") == 0 ? 0 : 1;
    } else if (strcmp(cmd, "ready") == 0) {
        rc = cmd_ready(&c, timeout);
    } else if (strcmp(cmd, "members") == 0) {
        rc = cmd_members(&c, timeout);
    } else if (strcmp(cmd, "force-config") == 0) {
        rc = cmd_force_config(&c, keep, timeout);
    } else {
        usage(stderr);
    }
    client_close(&c);
    return rc;
}
