/*
 * common/vocab.c — see vocab.h.
 */
#include "vocab.h"

#include <string.h>

static const char *const role_names[ROLE_COUNT] = {
    [ROLE_BACKUP] = "backup",   [ROLE_CANDIDATE] = "candidate", [ROLE_PRIMARY] = "primary",
    [ROLE_LEARNER] = "learner", [ROLE_REMOVED] = "removed",
};

static const char *const event_names[EVENT_COUNT] = {
    [EVENT_ELECTED] = "elected",
    [EVENT_STEPPED_DOWN] = "stepped_down",
    [EVENT_ELECTION_STARTED] = "election_started",
    [EVENT_PRIMARY_LOST] = "primary_lost",
    [EVENT_JOINED] = "joined",
    [EVENT_CAUGHT_UP] = "caught_up",
    [EVENT_COMMITTED] = "committed",
    [EVENT_REMOVED] = "removed",
    [EVENT_HANDOVER] = "handover",
    [EVENT_FORCED_CONFIG] = "forced_config",
    [EVENT_DISK_FULL] = "disk_full",
    [EVENT_DISK_OK] = "disk_ok",
    [EVENT_HANDSHAKE_REFUSED] = "handshake_refused",
    [EVENT_FAILED] = "failed",
    [EVENT_DOWN] = "down",
    [EVENT_UP] = "up",
    [EVENT_EXITED] = "exited",
    [EVENT_REQUEST_SENT] = "request_sent",
    [EVENT_REQUEST_COMMITTED] = "request_committed",
    [EVENT_REQUEST_FAILED] = "request_failed",
    [EVENT_START_FAILED] = "start_failed",
    [EVENT_FAULT_ADDED] = "fault_added",
    [EVENT_FAULT_HEALED] = "fault_healed",
    [EVENT_TIMING_CHANGED] = "timing_changed",
};

const char *role_name(enum role r)
{
    return (unsigned)r < ROLE_COUNT ? role_names[r] : "unknown";
}

const char *event_name(enum event_type t)
{
    return (unsigned)t < EVENT_COUNT ? event_names[t] : "unknown";
}

static int lookup(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

int role_parse(const char *name)
{
    return lookup(role_names, ROLE_COUNT, name);
}

int event_parse(const char *name)
{
    return lookup(event_names, EVENT_COUNT, name);
}
