/*
 * common/discovery.h — turns --peers / --replicas into connection targets.
 *
 * Every item of the list (a literal address or a DNS name) is resolved
 * again every interval, asynchronously on libuv's thread pool; the union of
 * all A/AAAA records becomes the transport's target set. A name that stops
 * resolving for a pass keeps its old addresses until the transport ages
 * them out, so a DNS hiccup does not drop live peers.
 */
#ifndef COMMON_DISCOVERY_H
#define COMMON_DISCOVERY_H

#include <uv.h>

#include "addr.h"
#include "transport.h"

struct discovery;

struct discovery *discovery_start(uv_loop_t *loop, struct transport *t,
                                  const struct addr_list *peers, unsigned interval_ms);
void discovery_stop(struct discovery *d, void (*done)(void *arg), void *arg);

#endif
