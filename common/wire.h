/*
 * common/wire.h — Envelope in and out of frames, with the checks every
 * receiver applies: protocol version, a known message type, sane ids.
 */
#ifndef COMMON_WIRE_H
#define COMMON_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "replicacao.pb-c.h"

typedef Replicacao__Envelope Envelope;

#include "bounds.h"

#define WIRE_ID_MAX LIMIT_ID_BYTES

/* Start an envelope from `from` at `epoch`; the caller sets one body. */
void wire_init(Envelope *env, const char *from, uint64_t epoch);
/* Pack into a fresh malloc'ed frame (header included). NULL when out of
 * memory. */
uint8_t *wire_pack(const Envelope *env, size_t *frame_len);
/* Every field of an envelope within its domain: NULL, or why not. */
const char *wire_validate(const Envelope *env);
/* Unpack one frame's payload and validate it (wire_validate). NULL with a reason on error;
 * free a result with wire_free. */
Envelope *wire_unpack(const uint8_t *payload, size_t len, char *err, size_t errlen);
/* The same, allocating in arena a: no wire_free; the envelope lives until
 * the arena is reset. */
Envelope *wire_unpack_in(struct arena *a, const uint8_t *payload, size_t len, char *err,
                         size_t errlen);
void wire_free(Envelope *env);
const char *wire_body_name(const Envelope *env);

#endif
