/*
 * tls_io.c - one connection's TLS: making its SSL, the handshake step, the
 * TLS transports under a gw_io (see tls_io.h).
 *
 * Reading: with read-ahead on, OpenSSL pulls as much as the socket has into
 * its buffer, so one recv() usually brings several records.  The pump is
 * edge-triggered and takes a short read as "the socket is drained"; a TLS
 * read keeps calling SSL_read until the caller's buffer is full, OpenSSL
 * wants more bytes from the socket, or the socket was seen drained: a BIO
 * callback notes when the last recv() returned less than it asked for, which
 * saves the extra recv() that would only say EAGAIN.
 *
 * Writing: the pump hands over a head and a body as separate pieces; they
 * are gathered into one record when small (one record, one send), and a large
 * piece goes to SSL_write as it is.  Partial writes are on, and after
 * WANT_WRITE the pump offers the same bytes again (iovq keeps them), which is
 * what OpenSSL requires.
 */
#include "tls_io.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int g_sess_slot_idx = -1;        /* SSL ex_data: SSL_SESSION ** (upstreams) */

void gw_tls_io_init(void)
{
    g_sess_slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The OpenSSL error queue as one line (and cleared). */
void gw_tls_errors(char *out, size_t outlen)
{
    unsigned long e;
    size_t n = 0;

    out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        /* "error:0A000086:SSL routines::certificate verify failed": keep the reason */
        const char *r = strrchr(one, ':');
        r = r && r[1] ? r + 1 : one;
        if (n == 0)
            n = (size_t)snprintf(out, outlen, "%s", r);
        else if (n < outlen && strstr(out, r) == NULL)
            n += (size_t)snprintf(out + n, outlen - n, "; %s", r);
    }
    if (out[0] == '\0')
        snprintf(out, outlen, "unknown TLS error");
}

int gw_tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_ex_data(ssl, g_sess_slot_idx);

    if (slot == NULL)
        return 0;
    if (*slot)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;       /* we keep the reference */
}

/* ---- connections ---- */

/* Notes on the read BIO whether its last recv() came back short (the
 * socket had nothing more): then a TLS read can stop without another
 * recv() that would only say EAGAIN. */
static long bio_cb(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
                   int ret, size_t *processed)
{
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        bool *drained = (bool *)BIO_get_callback_arg(b);
        if (drained)
            *drained = ret <= 0 || (processed && *processed < len);
    }
    return ret;
}

struct gw_tls_conn {
    SSL *ssl;
    bool drained;           /* the last recv() was short */
    bool eof;               /* the peer closed without close_notify */
    bool dead;              /* a fatal error: no close_notify on close */
};

SSL *gw_tls_server_new(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

SSL *gw_tls_client_new(SSL_CTX *ctx, int fd, const char *sni, bool verify, const char *ip,
                       SSL_SESSION *sess)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    SSL_set_connect_state(ssl);
    if (sni && SSL_set_tlsext_host_name(ssl, sni) != 1)
        goto fail;
    if (verify) {
        if (sni) {
            if (SSL_set1_host(ssl, sni) != 1)
                goto fail;
        } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1) {
            goto fail;
        }
    }
    if (sess)
        SSL_set_session(ssl, sess);
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

void gw_tls_session_slot(SSL *ssl, SSL_SESSION **slot)
{
    SSL_set_ex_data(ssl, g_sess_slot_idx, slot);
}

void gw_tls_session_free(void *sess)
{
    SSL_SESSION_free(sess);
}

/* The io's ctx is a struct gw_tls_conn; created by gw_tls_attach. */
bool gw_tls_attach(struct gw_io *io, SSL *ssl)
{
    struct gw_tls_conn *tc = calloc(1, sizeof(*tc));

    if (tc == NULL)
        return false;
    tc->ssl = ssl;
    BIO *rb = SSL_get_rbio(ssl);
    BIO_set_callback_ex(rb, bio_cb);
    BIO_set_callback_arg(rb, (char *)&tc->drained);
    io->ctx = tc;
    io->ops = &gw_io_tls;
    return true;
}

SSL *gw_tls_ssl(const struct gw_io *io)
{
    return io->ctx ? ((struct gw_tls_conn *)io->ctx)->ssl : NULL;
}

int gw_tls_handshake(struct gw_io *io, char *why, size_t whylen)
{
    struct gw_tls_conn *tc = io->ctx;
    int r = SSL_do_handshake(tc->ssl);

    if (r == 1)
        return GW_HS_DONE;
    int e = SSL_get_error(tc->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return GW_HS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return GW_HS_WANT_WRITE;
    tc->dead = true;
    unsigned long first = ERR_peek_error();
    if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_HTTP_REQUEST) {
        ERR_clear_error();
        return GW_HS_PLAINTEXT;
    }
    long vr = SSL_get_verify_result(tc->ssl);
    if (vr != X509_V_OK) {
        ERR_clear_error();
        snprintf(why, whylen, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    } else if (e == SSL_ERROR_SYSCALL && first == 0) {
        snprintf(why, whylen, "%s", errno ? strerror(errno) : "connection closed during the handshake");
    } else {
        gw_tls_errors(why, whylen);
    }
    return GW_HS_ERROR;
}

bool gw_tls_resumed(const struct gw_io *io)
{
    return SSL_session_reused(((struct gw_tls_conn *)io->ctx)->ssl) == 1;
}

void gw_tls_pick_ops(struct gw_io *io, bool *ktls_tx, bool *ktls_rx)
{
    struct gw_tls_conn *tc = io->ctx;
    bool tx = BIO_get_ktls_send(SSL_get_wbio(tc->ssl)) > 0;
    bool rx = BIO_get_ktls_recv(SSL_get_rbio(tc->ssl)) > 0;

    *ktls_tx = tx;
    *ktls_rx = rx;
    io->ops = tx && rx ? &gw_io_ktls_rxtx : tx ? &gw_io_ktls_tx : &gw_io_tls;
}

bool gw_tls_pending(const struct gw_io *io)
{
    return SSL_has_pending(((struct gw_tls_conn *)io->ctx)->ssl) == 1;
}

void gw_tls_close(struct gw_io *io)
{
    struct gw_tls_conn *tc = io->ctx;

    if (tc == NULL)
        return;
    if (!tc->dead && SSL_is_init_finished(tc->ssl))
        SSL_shutdown(tc->ssl);      /* close_notify, best effort: never waits */
    ERR_clear_error();
    SSL_free(tc->ssl);
    free(tc);
    io->ctx = NULL;
}

static ssize_t tls_fail(struct gw_tls_conn *tc, int e)
{
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return GW_IO_AGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    tc->dead = true;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) {
        tc->eof = true;     /* closed without close_notify: an EOF, as for plain TCP */
        return 0;
    }
    if (errno == 0)
        errno = EPROTO;
    ERR_clear_error();
    return GW_IO_ERR;
}

static ssize_t tls_read(struct gw_io *io, void *buf, size_t len)
{
    struct gw_tls_conn *tc = io->ctx;
    size_t total = 0;

    if (tc->eof)
        return 0;
    while (total < len) {
        tc->drained = false;
        errno = 0;
        int r = SSL_read(tc->ssl, (char *)buf + total, (int)(len - total > INT32_MAX ? INT32_MAX : len - total));
        if (r > 0) {
            total += (size_t)r;
            if (tc->drained && !SSL_has_pending(tc->ssl))
                break;      /* the socket is empty and so is OpenSSL's buffer */
            continue;
        }
        ssize_t f = tls_fail(tc, SSL_get_error(tc->ssl, r));
        if (total > 0)
            break;          /* report the EOF or error on the next call */
        return f;
    }
    return (ssize_t)total;
}

static ssize_t tls_writev(struct gw_io *io, const struct iovec *iov, int n)
{
    struct gw_tls_conn *tc = io->ctx;
    char gather[16384];
    const void *p;
    size_t len = 0;

    if (n == 1 || iov[0].iov_len >= sizeof(gather) / 2) {
        p = iov[0].iov_base;
        len = iov[0].iov_len;
    } else {
        for (int i = 0; i < n && len < sizeof(gather); i++) {
            size_t take = iov[i].iov_len < sizeof(gather) - len ? iov[i].iov_len : sizeof(gather) - len;
            memcpy(gather + len, iov[i].iov_base, take);
            len += take;
        }
        p = gather;
    }
    if (len == 0)
        return 0;
    errno = 0;
    int r = SSL_write(tc->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (r > 0)
        return r;
    ssize_t f = tls_fail(tc, SSL_get_error(tc->ssl, r));
    return f == 0 ? GW_IO_ERR : f;      /* a close while writing is an error */
}

static void tls_shutdown_wr(struct gw_io *io)
{
    struct gw_tls_conn *tc = io->ctx;

    if (!tc->dead && SSL_is_init_finished(tc->ssl))
        SSL_shutdown(tc->ssl);
    ERR_clear_error();
    shutdown(io->fd, SHUT_WR);
}

const struct gw_io_ops gw_io_tls = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .shutdown_wr = tls_shutdown_wr,
    .splice_from = false,
    .splice_to = false,
};

const struct gw_io_ops gw_io_ktls_tx = {
    .name = "ktls-tx",
    .read = tls_read,
    .writev = tls_writev,
    .shutdown_wr = tls_shutdown_wr,
    .splice_from = false,
    .splice_to = true,
};

/* Receiving stays with SSL_read even when the kernel decrypts: a splice
 * out of a kTLS socket fails on the first record that is not data (a
 * ticket, a key update, an alert), which would break the connection;
 * SSL_read handles those.  Responses, the large direction, splice in. */
const struct gw_io_ops gw_io_ktls_rxtx = {
    .name = "ktls",
    .read = tls_read,
    .writev = tls_writev,
    .shutdown_wr = tls_shutdown_wr,
    .splice_from = false,
    .splice_to = true,
};
