/*
 * common/discovery.c — see discovery.h.
 */
#include "discovery.h"
#include "logging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDRS 256

struct lookup {
    uv_getaddrinfo_t req;
    struct discovery *d;
    unsigned item;
};

struct discovery {
    uv_loop_t *loop;
    struct transport *t;
    struct addr_list peers;
    unsigned interval_ms;
    uv_timer_t timer;
    unsigned outstanding; /* lookups in flight this pass */
    bool unsure;          /* a lookup of this pass failed without an answer */
    bool told_unsure;     /* ... and that was logged (once per outage) */
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
    char addrs[MAX_ADDRS][128];
    size_t n_addrs;
};

static void maybe_done(struct discovery *d)
{
    if (d->stopping && d->outstanding == 0 && d->timer.data == NULL) {
        void (*done)(void *) = d->done;
        void *arg = d->done_arg;
        free(d);
        if (done) {
            done(arg);
        }
    }
}

static void add_addr(struct discovery *d, const struct sockaddr *sa, const char *port)
{
    char ip[64];
    if (uv_ip_name(sa, ip, sizeof(ip)) != 0 || d->n_addrs == MAX_ADDRS) {
        return;
    }
    char buf[128];
    snprintf(buf, sizeof(buf), sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, port);
    for (size_t i = 0; i < d->n_addrs; i++) {
        if (strcmp(d->addrs[i], buf) == 0) {
            return;
        }
    }
    strcpy(d->addrs[d->n_addrs++], buf);
}

static void pass_finished(struct discovery *d)
{
    if (d->unsure) {
        /* No answer is not "no such name": a DNS server restarting or out
         * of reach for a few seconds must not make every peer look gone
         * (the transport drops targets absent from a few passes in a row,
         * closing their connections). Keep what we have; the next pass
         * asks again. */
        return;
    }
    if (d->told_unsure) {
        log_info("peer discovery answers again");
        d->told_unsure = false;
    }
    const char *list[MAX_ADDRS];
    for (size_t i = 0; i < d->n_addrs; i++) {
        list[i] = d->addrs[i];
    }
    transport_set_targets(d->t, list, d->n_addrs);
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lookup *l = (struct lookup *)req;
    struct discovery *d = l->d;
    const struct addr_item *it = &d->peers.items[l->item];
    if (status < 0) {
        log_debug("resolve %s: %s", it->host, uv_strerror(status));
    }
    /* NXDOMAIN (and a name without addresses) is an answer: nobody is
     * there (compose and Swarm answer so once every container of a service
     * is gone). Anything else is no answer. */
    if (status < 0 && status != UV_EAI_NONAME && status != UV_EAI_NODATA) {
        if (!d->told_unsure) {
            log_warn("peer discovery: resolving %s failed (%s): keeping the peers we know until "
                     "it answers",
                     it->host, uv_strerror(status));
            d->told_unsure = true;
        }
        d->unsure = true;
    }
    for (struct addrinfo *ai = res; ai && !d->stopping; ai = ai->ai_next) {
        add_addr(d, ai->ai_addr, it->port);
    }
    uv_freeaddrinfo(res);
    free(l);
    d->outstanding--;
    if (d->outstanding == 0 && !d->stopping) {
        pass_finished(d);
    }
    maybe_done(d);
}

static void tick(uv_timer_t *timer)
{
    struct discovery *d = timer->data;
    if (d->outstanding > 0) {
        return; /* the previous pass is still resolving */
    }
    d->n_addrs = 0;
    d->unsure = false;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    for (unsigned i = 0; i < d->peers.n; i++) {
        struct lookup *l = calloc(1, sizeof(*l));
        if (l == NULL) {
            continue;
        }
        l->d = d;
        l->item = i;
        d->outstanding++;
        int rc =
            uv_getaddrinfo(d->loop, &l->req, resolved_cb, d->peers.items[i].host, NULL, &hints);
        if (rc < 0) {
            d->outstanding--;
            free(l);
        }
    }
}

struct discovery *discovery_start(uv_loop_t *loop, struct transport *t,
                                  const struct addr_list *peers, unsigned interval_ms)
{
    struct discovery *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    d->loop = loop;
    d->t = t;
    d->peers = *peers;
    d->interval_ms = interval_ms;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, tick, 0, interval_ms);
    return d;
}

static void timer_closed(uv_handle_t *h)
{
    struct discovery *d = h->data;
    d->timer.data = NULL;
    maybe_done(d);
}

void discovery_stop(struct discovery *d, void (*done)(void *arg), void *arg)
{
    d->stopping = true;
    d->done = done;
    d->done_arg = arg;
    /* Lookups on the thread pool cannot be cancelled once running; their
     * callbacks see `stopping` and the last one frees us. */
    uv_close((uv_handle_t *)&d->timer, timer_closed);
}
