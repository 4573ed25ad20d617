/*
 * common/wire.c — see wire.h.
 */
#include "wire.h"
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wire_init(Envelope *env, const char *from, uint64_t epoch)
{
    replicacao__envelope__init(env);
    env->version = REPLICACAO__VERSION__PROTOCOL_VERSION;
    env->from = (char *)from;
    env->epoch = epoch;
}

uint8_t *wire_pack(const Envelope *env, size_t *frame_len)
{
    size_t n = replicacao__envelope__get_packed_size(env);
    uint8_t *buf = malloc(FRAME_HEADER_BYTES + n);
    if (buf == NULL) {
        return NULL;
    }
    frame_put_header(buf, (uint32_t)n);
    replicacao__envelope__pack(env, buf + FRAME_HEADER_BYTES);
    *frame_len = FRAME_HEADER_BYTES + n;
    return buf;
}

Envelope *wire_unpack(const uint8_t *payload, size_t len, char *err, size_t errlen)
{
    Envelope *env = replicacao__envelope__unpack(NULL, len, payload);
    if (env == NULL) {
        snprintf(err, errlen, "malformed protobuf (%zu bytes)", len);
        return NULL;
    }
    const char *why = NULL;
    if (env->version != REPLICACAO__VERSION__PROTOCOL_VERSION) {
        why = "wrong protocol version";
    } else if (env->body_case == REPLICACAO__ENVELOPE__BODY__NOT_SET) {
        why = "unknown or missing message type";
    } else if (strlen(env->from) >= WIRE_ID_MAX) {
        why = "sender id too long";
    }
    if (why != NULL) {
        snprintf(err, errlen, "%s (version %u, body %d)", why, env->version, (int)env->body_case);
        replicacao__envelope__free_unpacked(env, NULL);
        return NULL;
    }
    return env;
}

void wire_free(Envelope *env)
{
    if (env != NULL) {
        replicacao__envelope__free_unpacked(env, NULL);
    }
}

const char *wire_body_name(const Envelope *env)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &replicacao__envelope__descriptor, (unsigned)env->body_case);
    return f ? f->name : "none";
}
