/*
 * sse_streams - open N server-sent-event streams to HOST:PORT at once and
 * measure how late each event arrives.
 *
 * Each stream is GET PATH (sluice-echo's /sse with ts=1: every event carries
 * the backend's CLOCK_MONOTONIC send time as "t=<ns>"); the delay of an
 * event is its arrival time minus that.  Used by bench/bench.py's streams
 * scenario with and without a proxy in between: the difference is what the
 * proxy adds.  Prints "ready OPEN FAILED" once every stream has its response
 * head (or failed), then, when all streams ended or HOLD seconds passed,
 * "done EVENTS ENDED p50_us p90_us p99_us max_us BROKEN".
 *
 * usage: sse_streams HOST PORT N PATH HOLD_SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF 4096
#define NBUCKET 200000      /* 10 µs buckets up to 2 s */

struct stream {
	int fd;
	int headed;          /* response head seen */
	int ended;
	size_t len;
	char buf[RBUF];
};

static uint64_t hist[NBUCKET + 1];
static uint64_t nevents, lat_max;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void record(uint64_t sent, uint64_t at)
{
	uint64_t d = at > sent ? at - sent : 0;
	uint64_t b = d / 10000;
	hist[b > NBUCKET ? NBUCKET : b]++;
	nevents++;
	if (d > lat_max)
		lat_max = d;
}

static uint64_t pct(double q)
{
	uint64_t want = (uint64_t)(q * (double)nevents), seen = 0;
	for (size_t i = 0; i <= NBUCKET; i++) {
		seen += hist[i];
		if (seen > want)
			return i * 10;
	}
	return NBUCKET * 10;
}

/* Scan the bytes for events ("t=<ns>" in a data line); chunk framing lines
 * are ignored (they hold no "t=").  Keeps a partial line for the next read. */
static void scan(struct stream *s, uint64_t at)
{
	char *p = s->buf, *end = s->buf + s->len;
	if (!s->headed) {
		char *h = memmem(p, s->len, "\r\n\r\n", 4);
		if (h == NULL)
			return;
		s->headed = strncmp(p, "HTTP/1.1 200", 12) == 0 ? 1 : -1;
		p = h + 4;
	}
	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			break;
		*nl = '\0';
		char *t = strstr(p, " t=");
		if (t && strncmp(p, "data: ", 6) == 0)
			record(strtoull(t + 3, NULL, 10), at);
		if (strcmp(p, "0\r") == 0)
			s->ended = 1;   /* the last chunk */
		p = nl + 1;
	}
	s->len = (size_t)(end - p);
	memmove(s->buf, p, s->len);
}

static struct stream *ss;
static int ep, n_total, failed, open_, headed, ended, broken;

/* Read what is ready within timeout_ms. */
static void poll_once(int timeout_ms)
{
	struct epoll_event evs[256];
	int k = epoll_wait(ep, evs, 256, timeout_ms);
	uint64_t at = now_ns();

	for (int j = 0; j < k; j++) {
		struct stream *s = &ss[evs[j].data.u32];
		ssize_t r = read(s->fd, s->buf + s->len, RBUF - s->len - 1);
		if (r <= 0) {
			if (!s->ended)
				broken++;
			epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			close(s->fd);
			s->fd = -1;
			continue;
		}
		int was = s->headed, was_ended = s->ended;
		s->len += (size_t)r;
		scan(s, at);
		if (!was && s->headed)
			headed++;
		if (!was_ended && s->ended)
			ended++;
		if (s->len >= RBUF - 1)
			s->len = 0;     /* a line that long is not an event */
	}
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: sse_streams HOST PORT N PATH HOLD_SECONDS\n");
		return 2;
	}
	int n = atoi(argv[3]), hold = atoi(argv[5]);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char req[512];
	int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", argv[4], argv[1]);
	ss = calloc((size_t)n, sizeof(*ss));
	ep = epoll_create1(0);
	n_total = n;
	/* opened evenly over a second, so that the streams' events (one a
	 * second each) are spread over the second as independent clients'
	 * would be, not fired by the backend in one burst */
	uint64_t t_open = now_ns();
	for (int i = 0; i < n; i++) {
		uint64_t due = t_open + (uint64_t)i * 1000000000ull / (uint64_t)n;
		while (now_ns() < due)     /* read the open streams meanwhile */
			poll_once((int)((due - now_ns()) / 1000000));
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
		    write(fd, req, (size_t)rlen) != rlen) {
			if (fd >= 0)
				close(fd);
			ss[i].fd = -1;
			failed++;
			continue;
		}
		ss[i].fd = fd;
		open_++;
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	uint64_t deadline = now_ns() + (uint64_t)hold * 1000000000ull;
	int said_ready = 0;
	while (ended + broken < open_ && now_ns() < deadline) {
		poll_once(100);
		if (!said_ready && headed + failed + broken >= n) {
			printf("ready %d %d\n", open_, failed + broken);
			fflush(stdout);
			said_ready = 1;
		}
	}
	if (!said_ready)
		printf("ready %d %d\n", headed, n - headed);
	printf("done %llu %d %llu %llu %llu %llu %d\n", (unsigned long long)nevents, ended,
	       (unsigned long long)pct(0.50), (unsigned long long)pct(0.90), (unsigned long long)pct(0.99),
	       (unsigned long long)(lat_max / 1000), broken);
	fflush(stdout);
	return 0;
}
