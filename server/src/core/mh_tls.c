#include "mh_tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

void mh_tls_errstr(char *buf, size_t len, const char *what)
{
    unsigned long e = ERR_get_error();
    char detail[200] = "unknown error";

    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    snprintf(buf, len, "%s: %s", what, detail);
}

int mh_tls_use_cert(mh_tls_ctx *ctx, const char *cert_file, const char *key_file, const char *label,
                    char *err, size_t errlen)
{
    char what[600];

    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(what, sizeof what, "cannot load the %s certificate '%s'", label, cert_file);
        mh_tls_errstr(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what, "cannot use the %s key '%s'", label, key_file);
        mh_tls_errstr(err, errlen, what);
        return -1;
    }
    return 0;
}

mh_tls_ctx *mh_tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        mh_tls_errstr(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial writes: a large batch of frames goes out record by record as
     * the socket takes it. A moving buffer: after WANT_WRITE the rest is
     * offered again from wherever the writer keeps it. Released buffers:
     * an idle connection does not keep 2 x 16 KiB of record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* A client's renegotiation would make reads write and writes read in
     * the middle of a stream, for nothing a browser needs. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (mh_tls_use_cert(ctx, cert_file, key_file, "TLS", err, errlen))
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void mh_tls_ctx_free(mh_tls_ctx *ctx)
{
    SSL_CTX_free(ctx);
}

mh_tls *mh_tls_new(mh_tls_ctx *ctx, int fd)
{
    SSL *t = SSL_new(ctx);

    if (!t)
        return NULL;
    if (SSL_set_fd(t, fd) != 1) {
        SSL_free(t);
        return NULL;
    }
    SSL_set_accept_state(t);
    return t;
}

void mh_tls_free(mh_tls *t, bool notify)
{
    if (!t)
        return;
    /* SSL_shutdown after a fatal error would only add one to the queue */
    if (notify && SSL_is_init_finished(t))
        SSL_shutdown(t);
    SSL_free(t);
    ERR_clear_error();
}

int mh_tls_handshake(mh_tls *t, bool *want_write, char *why, size_t whylen)
{
    int ret, e;

    ERR_clear_error();
    ret = SSL_do_handshake(t);
    if (ret == 1)
        return 1;
    e = SSL_get_error(t, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    if (e == SSL_ERROR_SSL)
        mh_tls_errstr(why, whylen, "TLS handshake");
    else if (e == SSL_ERROR_SYSCALL && errno)
        snprintf(why, whylen, "TLS handshake: %s", strerror(errno));
    else
        snprintf(why, whylen, "TLS handshake: the client went away");
    ERR_clear_error();
    return -1;
}

/* SSL_read / SSL_write's result as this module's. */
static ssize_t result(mh_tls *t, int ret, bool wr, bool *other)
{
    int e;

    if (ret > 0)
        return ret;
    e = SSL_get_error(t, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *other = (e == SSL_ERROR_WANT_READ) == wr;
        return 0;
    }
    ERR_clear_error(); /* a reset, EOF, close_notify or a bad record: the peer is gone */
    return -1;
}

ssize_t mh_tls_read(mh_tls *t, void *buf, size_t len, bool *other)
{
    ERR_clear_error();
    return result(t, SSL_read(t, buf, len > INT_MAX ? INT_MAX : (int)len), false, other);
}

ssize_t mh_tls_write(mh_tls *t, const void *buf, size_t len, bool *other)
{
    ERR_clear_error();
    return result(t, SSL_write(t, buf, len > INT_MAX ? INT_MAX : (int)len), true, other);
}

bool mh_tls_pending(const mh_tls *t)
{
    return SSL_pending(t) > 0;
}
