/*
 * coordinator/sslcompat.c — lets Debian's civetweb 1.15 load OpenSSL 3.
 *
 * That civetweb opens "libcrypto.so" and "libssl.so" at run time and looks
 * up each function it uses by its OpenSSL 1.1 name; one of them,
 * SSL_get_peer_certificate, is only a macro in OpenSSL 3, so the lookup
 * fails and civetweb serves no HTTPS at all. This file is built twice as a
 * tiny shared library: libreplicacao-crypto.so, with the soname
 * "libcrypto.so" and nothing in it but its dependency on libcrypto.so.3,
 * and libreplicacao-ssl.so, with the soname "libssl.so", depending on
 * libssl.so.3 and adding the missing function. tls.c opens both (by path)
 * before civetweb starts: the dynamic loader then hands civetweb these
 * already-loaded objects for the names it asks for, and the lookups in
 * them reach OpenSSL 3 through their dependencies. The -dev packages'
 * libssl.so links are not needed either.
 */
#ifdef SSLCOMPAT_SSL
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *s);

/* OpenSSL 1.1's semantics: the caller owns a reference, as with get1. */
X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
#else
/* libcrypto.so: its dependency is all it holds. */
int replicacao_sslcompat_crypto(void);
int replicacao_sslcompat_crypto(void)
{
    return 0;
}
#endif
