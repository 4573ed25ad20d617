/*
 * common/addr.h — "host:port" lists as given to --peers / --replicas.
 *
 * A list item may be a literal address or a DNS name; discovery resolves
 * every item and uses all of its A records, so one name (compose's service
 * name `replica`) stands for every scaled replica.
 */
#ifndef COMMON_ADDR_H
#define COMMON_ADDR_H

#include <stddef.h>

#define ADDR_MAX_ITEMS 64
#define ADDR_HOST_MAX  256

struct addr_item {
    char host[ADDR_HOST_MAX];
    char port[8];
};

struct addr_list {
    unsigned n;
    struct addr_item items[ADDR_MAX_ITEMS];
};

/* Split "host:port", "[v6]:port" or "host" (then default_port). 0 or -1. */
int addr_split(const char *s, const char *default_port, struct addr_item *out);
/* Comma-separated items; empty items are skipped. 0, or -1 with a reason. */
int addr_list_parse(const char *s, const char *default_port, struct addr_list *out, char *err,
                    size_t errlen);

#endif
