/*
 * common/addr.c — see addr.h.
 */
#include "addr.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int valid_port(const char *p)
{
    uint64_t v;
    return parse_u64(p, 1, 65535, &v) == 0;
}

int addr_split(const char *s, const char *default_port, struct addr_item *out)
{
    const char *host = s, *port = NULL;
    size_t host_len;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            return -1;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        if (close[1] == ':') {
            port = close + 2;
        } else if (close[1] != '\0') {
            return -1;
        }
    } else {
        const char *colon = strrchr(s, ':');
        host_len = colon ? (size_t)(colon - s) : strlen(s);
        port = colon ? colon + 1 : NULL;
    }
    if (port == NULL) {
        port = default_port;
    }
    if (host_len == 0 || host_len >= sizeof(out->host) || port == NULL || !valid_port(port) ||
        !validate_text(host, host_len, sizeof(out->host))) {
        return -1;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    snprintf(out->port, sizeof(out->port), "%s", port);
    return 0;
}

int addr_list_parse(const char *s, const char *default_port, struct addr_list *out, char *err,
                    size_t errlen)
{
    out->n = 0;
    char *copy = strdup(s ? s : "");
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (out->n == ADDR_MAX_ITEMS) {
            snprintf(err, errlen, "more than %d addresses", ADDR_MAX_ITEMS);
            rc = -1;
            break;
        }
        if (addr_split(tok, default_port, &out->items[out->n]) != 0) {
            snprintf(err, errlen, "bad address '%s' (want host:port)", tok);
            rc = -1;
            break;
        }
        out->n++;
    }
    free(copy);
    return rc;
}
