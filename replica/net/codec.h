/*
 * replica/net/codec.h — the core's messages to and from protobuf Envelopes.
 *
 * The core speaks plain C structs (replica/core/core.h); only this file
 * knows both shapes. Converted structures borrow the source's strings and
 * data, so they live only as long as their source.
 */
#ifndef REPLICA_CODEC_H
#define REPLICA_CODEC_H

#include "core/core.h"
#include "wire.h"

/* An outgoing envelope with room for every sub-message it points to. */
struct codec_out {
    Envelope env;
    union {
        Replicacao__VoteRequest vote_request;
        Replicacao__VoteResponse vote_response;
        Replicacao__Append append;
        Replicacao__AppendResponse append_response;
        Replicacao__TimeoutNow timeout_now;
        Replicacao__InstallSnapshot install_snapshot;
    } body;
    Replicacao__Entry *entries;
    Replicacao__Entry **entry_ptrs;
};

/* 0, or -1 when out of memory. Release with codec_out_release. */
int codec_from_core(struct codec_out *o, const char *self, const struct core_msg *m);
void codec_out_release(struct codec_out *o);

/* 1 when env carries a core message (m filled; entries in *scratch, free
 * it), 0 when it is something else, -1 when it is invalid (why in err). */
int codec_to_core(const Envelope *env, struct core_msg *m, struct core_entry **scratch, char *err,
                  size_t errlen);

void codec_entry_to_pb(const struct core_entry *e, Replicacao__Entry *pb);

#endif
