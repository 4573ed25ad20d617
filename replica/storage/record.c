/*
 * replica/storage/record.c — the record header and the payload codecs (see
 * record.h; the layout itself is documented in wal.c).
 */
#include "storage/record.h"

#include <string.h>

#include "storage/crc32c.h"
#include "validate.h"

/* ------------------------------------------------------------------------
 * The record header
 * ------------------------------------------------------------------------ */

void rec_seal(uint8_t *h, enum rec_type type, uint32_t len)
{
    uint8_t *p = h;

    p = put_u32(p, REC_MAGIC);
    p = put_u8(p, (uint8_t)type);
    p = put_u8(p, 0);
    p = put_u8(p, 0);
    p = put_u8(p, 0);
    p = put_u32(p, len);
    p = put_u32(p, crc32c(0, h + REC_HEADER_SIZE, len));
    put_u32(p, crc32c(0, h, REC_HEADER_SIZE - 4));
}

const char *rec_check_header(const uint8_t *h, uint8_t *type, uint32_t *len)
{
    if (get_u32(h) != REC_MAGIC)
        return "bad magic";
    if (get_u32(h + 16) != crc32c(0, h, REC_HEADER_SIZE - 4))
        return "header checksum mismatch";
    *type = h[4];
    *len = get_u32(h + 8);
    if (*len > REC_MAX_PAYLOAD)
        return "payload length over the limit";
    return NULL;
}

const char *rec_check_payload(const uint8_t *h)
{
    if (get_u32(h + 12) != crc32c(0, h + REC_HEADER_SIZE, get_u32(h + 8)))
        return "payload checksum mismatch";
    return NULL;
}

bool rec_reserved_clear(const uint8_t *h)
{
    return h[5] == 0 && h[6] == 0 && h[7] == 0;
}

/* ------------------------------------------------------------------------
 * ENTRY: u64 index, u64 epoch, u8 type, u64 time_ms, str client_id,
 * str primary, str data
 * ------------------------------------------------------------------------ */

#define ENTRY_FIXED (8 + 8 + 1 + 8)

size_t rec_entry_len(size_t clen, size_t plen, size_t dlen)
{
    return ENTRY_FIXED + 4 + clen + 4 + plen + 4 + dlen;
}

uint8_t *rec_put_entry(uint8_t *p, const struct core_entry *e, size_t clen, size_t plen)
{
    p = put_u64(p, e->index);
    p = put_u64(p, e->epoch);
    p = put_u8(p, (uint8_t)e->type);
    p = put_u64(p, (uint64_t)e->time_ms);
    p = put_str(p, e->client_id ? e->client_id : "", clen);
    p = put_str(p, e->primary ? e->primary : "", plen);
    return put_str(p, e->data, e->len);
}

bool rec_take_entry(struct cursor *c, struct entry_view *v)
{
    v->index = take_u64(c);
    v->epoch = take_u64(c);
    v->type = take_u8(c);
    v->time_ms = (int64_t)take_u64(c);
    v->client = take_str(c, &v->clen);
    v->primary = take_str(c, &v->plen);
    v->data = take_str(c, &v->dlen);
    return c->ok && c->left == 0 && v->type <= CORE_ENTRY_CONFIG;
}

size_t rec_take_entry_meta(const uint8_t *p, size_t avail, size_t total, struct entry_view *v,
                           size_t *need)
{
    size_t at = ENTRY_FIXED;

    *need = at + 4;
    if (total < *need)
        goto malformed;
    if (avail < *need)
        return 0;
    v->index = get_u64(p);
    v->epoch = get_u64(p + 8);
    v->type = p[16];
    v->time_ms = (int64_t)get_u64(p + 17);
    v->clen = get_u32(p + at);
    if (v->clen > total - at - 4 || v->type > CORE_ENTRY_CONFIG)
        goto malformed;
    at += 4 + v->clen;
    v->client = p + at - v->clen;
    *need = at + 4;
    if (total < *need)
        goto malformed;
    if (avail < *need)
        return 0;
    v->plen = get_u32(p + at);
    if (v->plen > total - at - 4)
        goto malformed;
    at += 4 + v->plen;
    v->primary = p + at - v->plen;
    *need = at + 4;
    if (total < *need)
        goto malformed;
    if (avail < *need)
        return 0;
    v->dlen = get_u32(p + at);
    at += 4;
    if (v->dlen != total - at)
        goto malformed;
    v->data = NULL;
    return at;

malformed:
    *need = 0;
    return 0;
}

/* ------------------------------------------------------------------------
 * STATE: u64 epoch, str voted_for, u32 n_bootstrap, n_bootstrap x str
 * ------------------------------------------------------------------------ */

/* What a replica id in a hard state may be: "" (no vote) or valid. */
static bool id_ok(const char *id, bool empty_ok)
{
    return (empty_ok && id[0] == '\0') || validate_id(id);
}

bool rec_state_len(const struct core_hard_state *hs, size_t *len)
{
    size_t vlen = strnlen(hs->voted_for, CORE_ID_MAX);

    /* Refuse what replay would reject rather than write an unreadable log. */
    if (vlen == CORE_ID_MAX || hs->n_bootstrap > CORE_MAX_MEMBERS || !id_ok(hs->voted_for, true))
        return false;
    *len = 8 + 4 + vlen + 4;
    for (unsigned i = 0; i < hs->n_bootstrap; i++) {
        size_t blen = strnlen(hs->bootstrap[i], CORE_ID_MAX);

        if (blen == CORE_ID_MAX || !id_ok(hs->bootstrap[i], false))
            return false;
        *len += 4 + blen;
    }
    return true;
}

uint8_t *rec_put_state(uint8_t *p, const struct core_hard_state *hs)
{
    p = put_u64(p, hs->epoch);
    p = put_str(p, hs->voted_for, strlen(hs->voted_for));
    p = put_u32(p, hs->n_bootstrap);
    for (unsigned i = 0; i < hs->n_bootstrap; i++)
        p = put_str(p, hs->bootstrap[i], strlen(hs->bootstrap[i]));
    return p;
}

static bool take_id(struct cursor *c, char *out)
{
    uint32_t len;
    const uint8_t *s = take_str(c, &len);

    if (!s || len >= CORE_ID_MAX)
        return c->ok = false;
    memcpy(out, s, len);
    return true;
}

/* Leaves the cursor after the state: it may be followed by more fields.
 * Ids the core would never have produced make the state malformed. */
bool rec_take_state(struct cursor *c, struct core_hard_state *hs)
{
    memset(hs, 0, sizeof *hs);
    hs->epoch = take_u64(c);
    if (take_id(c, hs->voted_for) && !id_ok(hs->voted_for, true))
        c->ok = false;
    hs->n_bootstrap = take_u32(c);
    if (hs->n_bootstrap > CORE_MAX_MEMBERS)
        c->ok = false;
    for (unsigned i = 0; c->ok && i < hs->n_bootstrap; i++)
        if (take_id(c, hs->bootstrap[i]) && !id_ok(hs->bootstrap[i], false))
            c->ok = false;
    return c->ok;
}

/* ------------------------------------------------------------------------
 * CHECKPOINT: u64 commit, u64 processed, u64 synced
 * ------------------------------------------------------------------------ */

uint8_t *rec_put_checkpoint(uint8_t *p, const struct core_checkpoint *cp)
{
    p = put_u64(p, cp->commit);
    p = put_u64(p, cp->processed);
    return put_u64(p, cp->synced);
}

bool rec_take_checkpoint(struct cursor *c, struct core_checkpoint *cp)
{
    cp->commit = take_u64(c);
    cp->processed = take_u64(c);
    cp->synced = take_u64(c);
    return c->ok;
}

void rec_checkpoint_keep(struct core_checkpoint *kept, const struct core_checkpoint *cp)
{
    if (cp->commit >= kept->commit)
        *kept = *cp;
}
