/*
 * https.h - (k8s) a small blocking HTTP/1.1 client over TCP or TLS, for
 * sluice-k8s watch: the Kubernetes API (TLS, the server certificate verified
 * against the cluster CA and the host name or IP) and the gateway's admin API.
 *
 * Owns: its connection and buffer.  May call: OpenSSL, libc.
 * Every wait is a poll() in slices of at most 100 ms that gives up when
 * *stop turns true or the deadline passes, so a watch thread stops promptly.
 */
#ifndef SLUICE_K8S_HTTPS_H
#define SLUICE_K8S_HTTPS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct kh_conn {
    int fd;
    SSL *ssl;
    const atomic_bool *stop;
    char buf[16384];
    size_t off, len;
    /* the body being read */
    bool chunked, eof;
    long long remain;               /* Content-Length left, -1: until close */
    long long chunk_left;
};

struct kh_resp {
    int status;
    char *body;                     /* NUL-terminated, malloc'd (kh_read_body) */
    size_t len;
};

/* A client TLS context: ca_pem (the trusted roots), optionally a client
 * certificate and key (PEM).  NULL with err set on a bad PEM. */
SSL_CTX *kh_tls_ctx(const char *ca_pem, size_t ca_len, const char *cert_pem, size_t cert_len,
                    const char *key_pem, size_t key_len, char *err, size_t errlen);

/* Connects to host:port (TLS when ctx, verifying the certificate for host).
 * 0, or -1 with err set. */
int kh_connect(struct kh_conn *c, const char *host, const char *port, SSL_CTX *ctx,
               const atomic_bool *stop, int64_t deadline_ms, char *err, size_t errlen);
void kh_close(struct kh_conn *c);

/* Sends a request (extra_headers: "Name: value\r\n" lines, may be NULL).
 * 0 or -1. */
int kh_send(struct kh_conn *c, const char *method, const char *host, const char *path,
            const char *extra_headers, const char *body, size_t body_len, int64_t deadline_ms);
/* Reads the response head: the status, or -1.  Sets up the body reader. */
int kh_read_head(struct kh_conn *c, int64_t deadline_ms);
/* Reads up to n bytes of the body: >0, 0 at its end, -1 on an error or
 * when the deadline passes (deadline_ms < 0: none). */
ssize_t kh_body_read(struct kh_conn *c, char *out, size_t n, int64_t deadline_ms);
/* The whole body (at most max bytes) into r->body.  0 or -1. */
int kh_read_body(struct kh_conn *c, struct kh_resp *r, size_t max, int64_t deadline_ms);

/* Monotonic milliseconds. */
int64_t kh_now_ms(void);

#endif
