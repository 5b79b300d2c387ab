/*
 * idle_conns - open N keep-alive client connections to HOST:PORT, send one
 * GET on each, read its whole response, and leave the connection idle.
 *
 * Used by bench/bench.py to measure the memory a proxy spends per idle
 * keep-alive client connection. Prints one line "ready OPEN FAILED" on
 * stdout once every connection has either finished its exchange or failed,
 * then holds the idle connections until stdin reaches EOF or HOLD seconds
 * pass, and prints "closed_by_peer K" before exiting (K idle connections the
 * peer closed while held, which would make the memory figure meaningless).
 *
 * usage: idle_conns HOST PORT N [PATH [HOLD_SECONDS]]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Requests in flight at once: enough to open 10,000 connections in about a
 * second, few enough that a proxy needs only a handful of upstream
 * connections, so the figure is about client connections. */
#define IN_FLIGHT 128
#define RESP_MAX 8192

enum { ST_CONNECTING, ST_SENDING, ST_READING };

struct slot {
	int fd;          /* -1 when the slot is free */
	int state;
	size_t sent;
	size_t got;
	char buf[RESP_MAX];
};

static struct slot slots[IN_FLIGHT];
static char request[512];
static size_t request_len;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Returns 1 when buf[0..len) holds one whole response, 0 when more bytes are
 * needed, -1 when it can never become one (not HTTP, too big, not 2xx). */
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
		if (strncasecmp(p, "transfer-encoding:", 18) == 0)
			return memmem(buf + head, len - head, "0\r\n\r\n", 5) != NULL;
		p = eol + 2;
	}
	return -1; /* a close-delimited body cannot stay idle */
}

static int start_connect(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Closes with a reset so that tens of thousands of benchmark connections do
 * not leave TIME_WAIT entries behind to disturb the next round. */
static void close_reset(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

/* Advances one in-flight exchange. Returns 1 when done (connection now
 * idle), 0 when it must wait for more events, -1 on failure. */
static int drive(struct slot *s)
{
	if (s->state == ST_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0)
			return err == EINPROGRESS ? 0 : -1;
		s->state = ST_SENDING;
	}
	if (s->state == ST_SENDING) {
		while (s->sent < request_len) {
			ssize_t n = send(s->fd, request + s->sent, request_len - s->sent, MSG_NOSIGNAL);
			if (n < 0)
				return (errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN) ? 0 : -1;
			s->sent += (size_t)n;
		}
		s->state = ST_READING;
	}
	for (;;) {
		ssize_t n = recv(s->fd, s->buf + s->got, RESP_MAX - s->got, 0);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		s->got += (size_t)n;
		int r = response_complete(s->buf, s->got);
		if (r != 0)
			return r;
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST PORT N [PATH [HOLD_SECONDS]]\n", argv[0]);
		return 2;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", argv[1]);
		return 2;
	}
	long n = atol(argv[3]);
	const char *path = argc > 4 ? argv[4] : "/";
	double hold = argc > 5 ? atof(argv[5]) : 60.0;
	if (n <= 0) {
		fprintf(stderr, "N must be positive\n");
		return 2;
	}
	int rl = snprintf(request, sizeof request,
		"GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: sluice-idle-bench\r\n\r\n",
		path, argv[1], argv[2]);
	if (rl <= 0 || (size_t)rl >= sizeof request) {
		fprintf(stderr, "path too long\n");
		return 2;
	}
	request_len = (size_t)rl;

	struct rlimit lim;
	getrlimit(RLIMIT_NOFILE, &lim);
	if (lim.rlim_cur < (rlim_t)n + 64) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
		if (lim.rlim_cur < (rlim_t)n + 64)
			fprintf(stderr, "warning: RLIMIT_NOFILE %lu < %ld connections\n",
				(unsigned long)lim.rlim_cur, n);
	}

	int *idle = calloc((size_t)n, sizeof *idle);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (idle == NULL || ep < 0) {
		perror("setup");
		return 2;
	}
	for (int i = 0; i < IN_FLIGHT; i++)
		slots[i].fd = -1;

	long started = 0, open_ok = 0, failed = 0, active = 0;
	double deadline = now_s() + 60.0;
	while (open_ok + failed < n && now_s() < deadline) {
		for (int i = 0; i < IN_FLIGHT && started < n; i++) {
			if (slots[i].fd >= 0)
				continue;
			started++;
			int fd = start_connect(&sa);
			if (fd < 0) {
				failed++;
				continue;
			}
			slots[i].fd = fd;
			slots[i].state = ST_CONNECTING;
			slots[i].sent = slots[i].got = 0;
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i };
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			active++;
		}
		if (active == 0)
			continue;
		struct epoll_event evs[IN_FLIGHT];
		int k = epoll_wait(ep, evs, IN_FLIGHT, 1000);
		for (int e = 0; e < k; e++) {
			struct slot *s = &slots[evs[e].data.u32];
			if (s->fd < 0)
				continue;
			int r = drive(s);
			if (r == 0) {
				if (s->state == ST_READING) {
					struct epoll_event ev = { .events = EPOLLIN, .data.u32 = evs[e].data.u32 };
					epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
				}
				continue;
			}
			epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			if (r > 0) {
				idle[open_ok++] = s->fd;
			} else {
				close_reset(s->fd);
				failed++;
			}
			s->fd = -1;
			active--;
		}
	}
	failed += n - open_ok - failed;
	printf("ready %ld %ld\n", open_ok, failed);
	fflush(stdout);

	struct pollfd in = { .fd = STDIN_FILENO, .events = POLLIN };
	double until = now_s() + hold;
	char sink[256];
	for (;;) {
		double left = until - now_s();
		if (left <= 0)
			break;
		int r = poll(&in, 1, (int)(left * 1000) + 1);
		if (r > 0 && read(STDIN_FILENO, sink, sizeof sink) <= 0)
			break;
		if (r < 0 && errno != EINTR)
			break;
	}

	/* An idle connection that the peer closed is readable (EOF) now. */
	long closed = 0;
	for (long i = 0; i < open_ok; i++) {
		struct pollfd p = { .fd = idle[i], .events = POLLIN };
		if (poll(&p, 1, 0) > 0)
			closed++;
		close_reset(idle[i]);
	}
	printf("closed_by_peer %ld\n", closed);
	fflush(stdout);
	free(idle);
	return 0;
}
