/*
 * tls_hs - full TLS 1.3 handshakes at a high rate, never resumed.
 *
 * Used by bench/bench.py (scenario tls_handshake) to measure what a proxy
 * spends per full handshake. Keeps CONNS connections in flight; each one
 * connects, does a full TLS 1.3 handshake (no session is ever offered, so the
 * server cannot resume), sends one small GET, reads the whole response,
 * sends close_notify and closes; then the slot starts over. After SECONDS no
 * new connection starts and the ones in flight finish (bounded), so every
 * handshake the server did is counted and the caller's CPU window matches.
 *
 * Prints one line on stdout:
 *   handshakes H errors E secs S tickets T resumed R not_tls13 V
 * H exchanges completed with a 2xx response; E failed ones (connect,
 * handshake, I/O, bad response); S seconds from start to the last
 * completion; T NewSessionTicket messages received (issuing them is part of
 * the server's cost, so it is reported, not hidden); R handshakes the server
 * claims resumed and V ones not TLS 1.3 (both must be 0). On stderr: the
 * first handshake's parameters and the first few errors.
 *
 * usage: tls_hs HOST PORT CONNS SECONDS [PATH [SNI]]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define RESP_MAX 8192
/* How long the connections in flight at the end may take to finish. */
#define DRAIN_SECONDS 5.0

enum { ST_FREE, ST_CONNECTING, ST_HANDSHAKE, ST_SENDING, ST_READING };

struct slot {
	int fd;
	int state;
	unsigned events;    /* epoll interest currently registered */
	SSL *ssl;
	size_t sent;
	size_t got;
	char buf[RESP_MAX];
};

static struct slot slots[MAX_CONNS];
static char request[512];
static size_t request_len;
static long tickets;
static int errors_shown;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Accepts any certificate chain without building or checking it: the
 * benchmark's certificate is self-signed, and OpenSSL would otherwise walk
 * its chain on every handshake (even with SSL_VERIFY_NONE), making the
 * client the bottleneck. The server still proves its key (CertificateVerify
 * is always checked), which is the cost being measured. */
static int accept_chain(X509_STORE_CTX *store, void *arg)
{
	(void)store;
	(void)arg;
	return 1;
}

/* Counts tickets only; returning 0 leaves the session to OpenSSL to free,
 * and nothing ever offers it back. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	(void)sess;
	tickets++;
	return 0;
}

static void show_error(const char *what, int code)
{
	if (errors_shown >= 5) {
		ERR_clear_error();
		return;
	}
	errors_shown++;
	char msg[256] = "";
	unsigned long e = ERR_get_error();
	if (e != 0)
		ERR_error_string_n(e, msg, sizeof msg);
	fprintf(stderr, "tls_hs: %s failed (ssl error %d, errno %d): %s\n", what, code, errno, msg);
	ERR_clear_error();
}

/* Returns 1 when buf[0..len) holds one whole 2xx response, 0 when more
 * bytes are needed, -1 when it can never become one. */
static int response_complete(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (end == NULL)
		return len >= RESP_MAX ? -1 : 0;
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[9] != '2')
		return -1;
	size_t head = (size_t)(end - buf) + 4;
	for (const char *p = buf; p < end; ) {
		const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
		if (eol == NULL)
			break;
		if (strncasecmp(p, "content-length:", 15) == 0) {
			size_t body = strtoul(p + 15, NULL, 10);
			if (head + body > RESP_MAX)
				return -1;
			return len >= head + body ? 1 : 0;
		}
		p = eol + 2;
	}
	return -1; /* the benchmark's backend always sends Content-Length */
}

static void want(int ep, struct slot *s, int i, unsigned ev)
{
	if (s->events == ev)
		return;
	struct epoll_event e = { .events = ev, .data.u32 = (uint32_t)i };
	epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
	s->events = ev;
}

/* Maps an SSL call's result to: 0 = wait for the event registered here,
 * -1 = failed. */
static int ssl_wait(int ep, struct slot *s, int i, int rc, const char *what)
{
	int err = SSL_get_error(s->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		want(ep, s, i, EPOLLIN);
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		want(ep, s, i, EPOLLOUT);
		return 0;
	}
	show_error(what, err);
	return -1;
}

/* Advances one exchange. Returns 1 when the response is complete, 0 when
 * it must wait, -1 on failure. */
static int drive(int ep, SSL_CTX *ctx, struct slot *s, int i, const char *sni)
{
	if (s->state == ST_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			if (err == EINPROGRESS)
				return 0;
			errno = err;
			show_error("connect", 0);
			return -1;
		}
		s->ssl = SSL_new(ctx);
		if (s->ssl == NULL || !SSL_set_fd(s->ssl, s->fd) ||
		    (sni[0] != '\0' && !SSL_set_tlsext_host_name(s->ssl, sni))) {
			show_error("SSL_new", 0);
			return -1;
		}
		SSL_set_connect_state(s->ssl);
		s->state = ST_HANDSHAKE;
	}
	if (s->state == ST_HANDSHAKE) {
		int rc = SSL_do_handshake(s->ssl);
		if (rc != 1)
			return ssl_wait(ep, s, i, rc, "handshake");
		s->state = ST_SENDING;
	}
	if (s->state == ST_SENDING) {
		while (s->sent < request_len) {
			int rc = SSL_write(s->ssl, request + s->sent, (int)(request_len - s->sent));
			if (rc <= 0)
				return ssl_wait(ep, s, i, rc, "write");
			s->sent += (size_t)rc;
		}
		s->state = ST_READING;
	}
	for (;;) {
		if (s->got >= RESP_MAX)
			return -1;
		int rc = SSL_read(s->ssl, s->buf + s->got, (int)(RESP_MAX - s->got));
		if (rc <= 0)
			return ssl_wait(ep, s, i, rc, "read");
		s->got += (size_t)rc;
		int r = response_complete(s->buf, s->got);
		if (r < 0) {
			if (errors_shown++ < 5)
				fprintf(stderr, "tls_hs: bad response: %.60s\n", s->buf);
			return -1;
		}
		if (r > 0)
			return 1;
	}
}

static void release(int ep, struct slot *s, int polite)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
	if (s->ssl != NULL) {
		/* One close_notify, as a well-behaved client sends; its answer is
		 * not awaited. */
		if (polite)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	close(s->fd);
	s->fd = -1;
	s->state = ST_FREE;
	ERR_clear_error();
}

static int start(int ep, struct slot *s, int i, const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS) {
		show_error("connect", 0);
		close(fd);
		return -1;
	}
	s->fd = fd;
	s->state = ST_CONNECTING;
	s->sent = s->got = 0;
	s->events = EPOLLOUT;
	struct epoll_event e = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s HOST PORT CONNS SECONDS [PATH [SNI]]\n", argv[0]);
		return 2;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", argv[1]);
		return 2;
	}
	int conns = atoi(argv[3]);
	double seconds = atof(argv[4]);
	const char *path = argc > 5 ? argv[5] : "/";
	const char *sni = argc > 6 ? argv[6] : "";
	if (conns <= 0 || conns > MAX_CONNS || seconds <= 0) {
		fprintf(stderr, "CONNS must be 1..%d and SECONDS positive\n", MAX_CONNS);
		return 2;
	}
	int rl = snprintf(request, sizeof request,
		"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-tls-hs-bench\r\n\r\n",
		path, sni[0] != '\0' ? sni : argv[1]);
	if (rl <= 0 || (size_t)rl >= sizeof request) {
		fprintf(stderr, "path too long\n");
		return 2;
	}
	request_len = (size_t)rl;

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)) {
		fprintf(stderr, "SSL_CTX setup failed\n");
		return 2;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_chain, NULL);
	/* Sessions are only counted, never stored or offered: every handshake
	 * is a full one. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);

	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		return 2;
	}
	for (int i = 0; i < conns; i++)
		slots[i].fd = -1;

	long done = 0, failed = 0, resumed = 0, not13 = 0, active = 0;
	int shown_params = 0;
	double t0 = now_s(), stop_at = t0 + seconds, last = t0;
	for (;;) {
		double t = now_s();
		int starting = t < stop_at;
		if (starting) {
			for (int i = 0; i < conns; i++) {
				if (slots[i].fd >= 0)
					continue;
				if (start(ep, &slots[i], i, &sa) < 0)
					failed++;
				else
					active++;
			}
		}
		if (active == 0) {
			if (!starting)
				break;
			/* Every connect failed at once (ports exhausted?): do not spin. */
			usleep(1000);
			continue;
		}
		if (t > stop_at + DRAIN_SECONDS)
			break;
		struct epoll_event evs[MAX_CONNS];
		int k = epoll_wait(ep, evs, MAX_CONNS, 100);
		for (int e = 0; e < k; e++) {
			int i = (int)evs[e].data.u32;
			struct slot *s = &slots[i];
			if (s->fd < 0)
				continue;
			int r = drive(ep, ctx, s, i, sni);
			if (r == 0)
				continue;
			if (r > 0) {
				if (SSL_session_reused(s->ssl))
					resumed++;
				if (SSL_version(s->ssl) != TLS1_3_VERSION)
					not13++;
				if (!shown_params) {
					shown_params = 1;
					int sig = 0;
					SSL_get_peer_signature_type_nid(s->ssl, &sig);
					fprintf(stderr, "tls_hs: %s %s group %s peer signature type %s\n",
						SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl),
						OBJ_nid2sn(SSL_get_negotiated_group(s->ssl)),
						sig ? OBJ_nid2sn(sig) : "?");
				}
				done++;
				last = now_s();
			} else {
				failed++;
			}
			release(ep, s, r > 0);
			active--;
		}
	}
	/* Whatever is still in flight after the drain counts as failed. */
	for (int i = 0; i < conns; i++) {
		if (slots[i].fd >= 0) {
			release(ep, &slots[i], 0);
			failed++;
		}
	}
	printf("handshakes %ld errors %ld secs %.3f tickets %ld resumed %ld not_tls13 %ld\n",
	       done, failed, last - t0, tickets, resumed, not13);
	fflush(stdout);
	SSL_CTX_free(ctx);
	return 0;
}
