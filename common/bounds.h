/*
 * common/bounds.h — every bound on what crosses a boundary, in one place.
 *
 * The replica, the coordinator, replctl and the tests all include this file,
 * so a limit is changed once and every checker agrees on it. Sizes of ids
 * count the terminating NUL, as the C buffers that hold them do.
 */
#ifndef COMMON_BOUNDS_H
#define COMMON_BOUNDS_H

/* A replica id: 1..63 bytes of [A-Za-z0-9._:-] (validate_id). Hostnames,
 * container ids and "r1" all fit; a newline, a space or a slash never does,
 * which keeps ids safe in configuration entries, URLs and log lines. */
#define LIMIT_ID_BYTES 64

/* A client id (the de-duplication key of a request): 1..127 bytes of valid
 * UTF-8 with no control characters (validate_client_id). */
#define LIMIT_CLIENT_ID_BYTES 128

/* Human names and addresses carried in Hello and status messages. */
#define LIMIT_NAME_BYTES 256

/* Any other string on the wire (reasons, event details, messages). */
#define LIMIT_TEXT_BYTES 4096

/* Members of one configuration, and so ids in a bootstrap list. */
#define LIMIT_MEMBERS 32

/* Epochs and log indexes travel as JSON numbers to the dashboard, where a
 * number above 2^53 - 1 silently loses precision. No honest cluster gets
 * near it (a million elections a second for 285 years), so a message that
 * carries more is refused as garbage rather than overflowing later. */
#define LIMIT_COUNTER_MAX 9007199254740991ULL /* 2^53 - 1 */

/* Buckets of one histogram on the wire (Status: fsync durations, Append
 * round trips); replicas send 16. */
#define LIMIT_HISTOGRAM_BUCKETS 32

/* Entries in one read (GET /api/requests, replctl read, ReadRequest). */
#define LIMIT_READ_DEFAULT 100
#define LIMIT_READ_MAX     1000
/* The per-replica detail pages (GET /api/replicas/{id}). */
#define LIMIT_DETAIL_DEFAULT 50

/* JSON bodies: nesting depth accepted before parsing. Our bodies are one
 * flat object; the bound keeps a hostile body from exhausting the stack of
 * a recursive parser on a small worker thread. */
#define LIMIT_JSON_DEPTH 16

/* Flags: a timeout or interval, and the sizes an operator may choose. */
#define LIMIT_TIMING_MS_MAX   3600000u /* an hour */
#define LIMIT_FRAME_BYTES_MIN 4096u
#define LIMIT_FRAME_BYTES_MAX (1u << 30)
#define LIMIT_BODY_BYTES_MAX  (64u << 20)

/* The fault lab (issue 14). Faults active at once in the cluster, and so
 * rules one replica holds (a fault gives a replica at most one rule per
 * peer); a link's delay, a pause, a fault's life; slow motion's factor. */
#define LIMIT_FAULTS            16
#define LIMIT_FAULT_RULES       (LIMIT_FAULTS * LIMIT_MEMBERS)
#define LIMIT_FAULT_DELAY_MS    60000u    /* a minute */
#define LIMIT_FAULT_PAUSE_MS    600000u   /* ten minutes */
#define LIMIT_FAULT_LIFE_MS     86400000u /* a day */
#define LIMIT_SLOW_MOTION       100u
#define LIMIT_TRAFFIC_ITEMS     256     /* items of one Traffic batch */
#define LIMIT_RUNTIME_TIMING_MS 600000u /* heartbeat and election timeouts set at run time */

/* Peer authentication (common/peer_auth.h): fixed sizes, anything else in
 * a Hello's nonce or an Auth is refused. */
#define AUTH_NONCE_BYTES     32 /* Hello.nonce */
#define AUTH_PROOF_BYTES     32 /* HMAC-SHA256 */
#define AUTH_KEY_BYTES       32 /* Ed25519 public key */
#define AUTH_SIGNATURE_BYTES 64 /* Ed25519 signature */

/* A replica asked to fail exits with this status (EX_TEMPFAIL), which tells
 * a supervisor "restart me" apart from a crash. */
#define EXIT_FAILED_ON_REQUEST 75

#endif
