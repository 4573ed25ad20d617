/*
 * common/faults.c — see faults.h.
 */
#include "faults.h"

#include <stdio.h>
#include <string.h>

void faults_init(struct faults *f, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

void faults_clear(struct faults *f)
{
    f->n = 0;
    f->paused_until = 0;
    f->pause_fault_id = 0;
}

int faults_add(struct faults *f, int64_t now, uint64_t fault_id, const char *peer, double loss,
               unsigned delay_ms, unsigned expires_in_ms)
{
    if (f->n >= LIMIT_FAULT_RULES) {
        return -1;
    }
    struct fault_rule *r = &f->rules[f->n++];
    memset(r, 0, sizeof(*r));
    r->fault_id = fault_id;
    snprintf(r->peer, sizeof(r->peer), "%s", peer);
    r->loss = loss < 0 ? 0 : loss > 1 ? 1 : loss;
    r->delay_ms = delay_ms;
    r->expires_at = expires_in_ms ? now + expires_in_ms : 0;
    return 0;
}

void faults_pause(struct faults *f, int64_t now, unsigned ms, uint64_t fault_id)
{
    f->paused_until = ms ? now + ms : 0;
    f->pause_fault_id = ms ? fault_id : 0;
}

static bool expired(int64_t at, int64_t now)
{
    return at != 0 && now >= at;
}

bool faults_expire(struct faults *f, int64_t now)
{
    bool changed = false;
    unsigned kept = 0;
    for (unsigned i = 0; i < f->n; i++) {
        if (expired(f->rules[i].expires_at, now)) {
            changed = true;
        } else {
            f->rules[kept++] = f->rules[i];
        }
    }
    f->n = kept;
    if (expired(f->paused_until, now)) {
        faults_pause(f, now, 0, 0);
        changed = true;
    }
    return changed;
}

int64_t faults_next_deadline(const struct faults *f)
{
    int64_t next = f->paused_until;
    for (unsigned i = 0; i < f->n; i++) {
        int64_t at = f->rules[i].expires_at;
        if (at != 0 && (next == 0 || at < next)) {
            next = at;
        }
    }
    return next;
}

bool faults_paused(const struct faults *f, int64_t now)
{
    return f->paused_until != 0 && now < f->paused_until;
}

unsigned faults_pause_left(const struct faults *f, int64_t now)
{
    return faults_paused(f, now) ? (unsigned)(f->paused_until - now) : 0;
}

bool faults_any(const struct faults *f)
{
    return f->n > 0 || f->paused_until != 0;
}

/* xorshift64*, as the replica's election timer: spread, not secrecy. */
static double uniform(struct faults *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (double)((f->rng * 2685821657736338717ULL) >> 11) / (double)(1ULL << 53);
}

enum fault_verdict faults_outbound(struct faults *f, const char *peer, int64_t now,
                                   unsigned *delay_ms)
{
    double pass = 1.0;
    unsigned delay = 0;
    for (unsigned i = 0; i < f->n; i++) {
        const struct fault_rule *r = &f->rules[i];
        if (expired(r->expires_at, now) || strcmp(r->peer, peer) != 0) {
            continue;
        }
        pass *= 1.0 - r->loss;
        if (r->delay_ms > delay) {
            delay = r->delay_ms;
        }
    }
    *delay_ms = delay;
    if (pass >= 1.0) {
        return FAULT_PASS;
    }
    if (pass <= 0.0 || uniform(f) >= pass) {
        f->dropped++;
        return FAULT_DROP;
    }
    return FAULT_PASS;
}

bool faults_cut(const struct faults *f, const char *peer, int64_t now)
{
    for (unsigned i = 0; i < f->n; i++) {
        const struct fault_rule *r = &f->rules[i];
        if (r->loss >= 1.0 && !expired(r->expires_at, now) && strcmp(r->peer, peer) == 0) {
            return true;
        }
    }
    return false;
}
