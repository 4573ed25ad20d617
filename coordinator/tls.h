/*
 * coordinator/tls.h — the certificate and key civetweb serves HTTPS with
 * (--tls-cert, --tls-key).
 *
 * civetweb 1.15 takes one PEM file holding both the certificate (chain)
 * and the private key (its ssl_certificate option; it has no option for a
 * separate key). Rather than ask for such a file, or write the key into a
 * temporary one, both files are read at start and joined in an anonymous
 * memory file (memfd) whose /proc/self/fd path civetweb opens while it
 * starts; the memory file is closed as soon as civetweb has loaded it.
 */
#ifndef COORDINATOR_TLS_H
#define COORDINATOR_TLS_H

#include <stddef.h>

struct tls_pem {
    int fd;        /* the memory file, -1 when none */
    char path[64]; /* "/proc/self/fd/N": civetweb's ssl_certificate */
};

/* Read both files (each must be readable and hold a PEM block; the key a
 * private key) and join them. 0, or -1 with a reason naming the file. */
int tls_pem_open(struct tls_pem *p, const char *cert, const char *key, char *err, size_t errlen);
void tls_pem_close(struct tls_pem *p);

/* Make OpenSSL 3 loadable by civetweb (sslcompat.c): 0, or -1 with a
 * reason (civetweb without HTTPS, the stand-ins missing). Before civetweb's
 * mg_init_library. */
int tls_load_openssl(char *err, size_t errlen);

/* Before anything starts: can civetweb serve HTTPS (tls_load_openssl), and
 * do both files read as tls_pem_open wants them? 0, or -1 with a reason. */
int tls_check(const char *cert, const char *key, char *err, size_t errlen);

/* The civetweb listening_ports value of an IP:PORT, [IPv6]:PORT or PORT
 * address with TLS on: the same with "s" appended. -1 when it does not fit. */
int tls_listening_port(const char *listen, char *out, size_t len);

#endif
