/*
 * coordinator/metrics.h — counters for GET /metrics (Prometheus text).
 * Updated from the loop thread and HTTP workers alike, so every update
 * takes the lock; rendering adds the cluster's and per-replica gauges, and
 * the histograms the replicas measure (fsync, Append round trips), from the
 * immutable cluster view, with no call to the replicas. docs/api.md lists
 * every series; `promtool check metrics` must find nothing to say.
 */
#ifndef COORDINATOR_METRICS_H
#define COORDINATOR_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct metrics;
struct view;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* A checked POST /api/requests handed to the cluster: pending until
 * metrics_request. */
void metrics_request_started(struct metrics *m);
/* One POST /api/requests, by its HTTP status, with its latency. */
void metrics_request(struct metrics *m, int http_status, double seconds);
/* One GET /api/requests answered, by consistency and HTTP status. */
void metrics_read(struct metrics *m, bool linearizable, int http_status);
/* The loop thread published a view: counts changes of primary. */
void metrics_view(struct metrics *m, const struct view *v);
/* One failover: from the primary's failure to the next election. */
void metrics_failover(struct metrics *m, double seconds);
void metrics_ws_clients(struct metrics *m, int delta);
void metrics_ws_dropped(struct metrics *m);
/* Prometheus exposition text (malloc'ed), with the cluster's and every
 * replica's gauges read from the typed view (NULL: none). */
char *metrics_render(struct metrics *m, const struct view *v);

#endif
