/*
 * coordinator/auth.c — see auth.h.
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void digest(const char *s, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) != 1) {
        /* Never matches a loaded token: those hash without fail or refuse
         * to start. */
        memset(out, 0, 32);
    }
}

int auth_load_file(const char *path, unsigned char out[32], char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the token file %s: %s", path, strerror(errno));
        return -1;
    }
    /* Room for the longest token and generous trailing white space; one
     * byte more says the file is too long. */
    static const size_t room = 2 * AUTH_TOKEN_MAX;
    char buf[2 * AUTH_TOKEN_MAX + 1];
    size_t n = fread(buf, 1, room + 1, f);
    bool failed = ferror(f) != 0;
    int saved = errno;
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "cannot read the token file %s: %s", path, strerror(saved));
        return -1;
    }
    while (n > 0 && n <= room && isspace((unsigned char)buf[n - 1])) {
        n--;
    }
    if (n == 0) {
        snprintf(err, errlen, "the token file %s is empty", path);
        return -1;
    }
    if (n > AUTH_TOKEN_MAX) {
        snprintf(err, errlen, "the token in %s is longer than %d bytes", path, AUTH_TOKEN_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (buf[i] < 0x21 || buf[i] > 0x7e) {
            snprintf(err, errlen,
                     "the token in %s must be printable ASCII without spaces (byte %zu is not)",
                     path, i + 1);
            return -1;
        }
    }
    digest(buf, n, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

int auth_setup(struct auth *a, const char *token_path, const char *read_path, bool metrics_open,
               char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->metrics_open = metrics_open;
    bool token = token_path != NULL && token_path[0] != '\0';
    bool read = read_path != NULL && read_path[0] != '\0';
    if (read && !token) {
        snprintf(err, errlen, "--api-read-token-file needs --api-token-file");
        return -1;
    }
    if (token && auth_load_file(token_path, a->full, err, errlen) != 0) {
        return -1;
    }
    if (read && auth_load_file(read_path, a->read, err, errlen) != 0) {
        return -1;
    }
    if (read && CRYPTO_memcmp(a->full, a->read, 32) == 0) {
        snprintf(err, errlen, "the read-only token must differ from the API token");
        return -1;
    }
    a->on = token;
    a->has_read = read;
    return 0;
}

enum auth_need auth_need(const struct auth *a, const char *method, const char *path)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (!a->on) {
        return AUTH_NEED_NONE;
    }
    /* "/api" itself is no endpoint (a static 404), everything below is. */
    if (strncmp(path, "/api/", 5) == 0) {
        return get ? AUTH_NEED_READ : AUTH_NEED_WRITE;
    }
    if (strcmp(path, "/metrics") == 0 && !a->metrics_open) {
        return AUTH_NEED_READ; /* another method is 405 after the check */
    }
    return AUTH_NEED_NONE;
}

const char *auth_bearer(const char *header, size_t len, size_t *token_len)
{
    if (header == NULL || len < 7 || strncasecmp(header, "Bearer", 6) != 0 ||
        (header[6] != ' ' && header[6] != '\t')) {
        return NULL;
    }
    size_t i = 7;
    while (i < len && (header[i] == ' ' || header[i] == '\t')) {
        i++;
    }
    size_t end = len;
    while (end > i && (header[end - 1] == ' ' || header[end - 1] == '\t')) {
        end--;
    }
    if (end == i) {
        return NULL;
    }
    *token_len = end - i;
    return header + i;
}

enum auth_level auth_level(const struct auth *a, const char *token, size_t len)
{
    if (token == NULL || len == 0 || len > AUTH_TOKEN_MAX) {
        return AUTH_LEVEL_NONE;
    }
    unsigned char d[32];
    digest(token, len, d);
    /* Both comparisons always run: the time does not say which matched. */
    bool full = CRYPTO_memcmp(d, a->full, 32) == 0;
    bool read = CRYPTO_memcmp(d, a->read, 32) == 0 && a->has_read;
    return full ? AUTH_LEVEL_FULL : read ? AUTH_LEVEL_READ : AUTH_LEVEL_NONE;
}

enum auth_result auth_check(const struct auth *a, const char *method, const char *path,
                            const char *token, size_t token_len)
{
    enum auth_need need = auth_need(a, method, path);
    if (need == AUTH_NEED_NONE) {
        return AUTH_OK;
    }
    if (token == NULL) {
        return AUTH_MISSING;
    }
    enum auth_level level = auth_level(a, token, token_len);
    if (level == AUTH_LEVEL_NONE) {
        return AUTH_INVALID;
    }
    return need == AUTH_NEED_WRITE && level != AUTH_LEVEL_FULL ? AUTH_READ_ONLY : AUTH_OK;
}
