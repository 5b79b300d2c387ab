/*
 * put_client - the reload scenario's admin client (bench/bench.py).
 *
 * It runs on the load core beside wrk and the backend, so whatever it costs
 * there shows in the p99 of the proxy under test: it is written to cost
 * that core little beyond the PUTs themselves (the 1.3 MB crossing
 * loopback: about 1 ms of the core per PUT, nearly all in the kernel), as
 * wrk is. The Python client it replaces woke an interpreter for every PUT
 * and every check, and its control cell (uploads only) cost p99 1.11x
 * where this one's cost 0.92-1.04x in seven runs.
 *
 * usage: put_client ADMIN_PORT PROXY_PORT TOKEN INTERVAL_S HOST PATH HEADER DOC_A DOC_B
 *
 * Reads both documents, asks the proxy which variant it serves (the value of
 * response header HEADER on GET PATH with Host HOST, over one kept-alive
 * connection kept for every later check), prints {"ready": true} and then
 * runs one cell per command on stdin:
 *
 *   put|upload SECONDS DELAY
 *
 * After DELAY s, every INTERVAL_S s for SECONDS s, it PUTs the variant the
 * proxy is not serving to /config on 127.0.0.1:ADMIN_PORT (Connection:
 * close) and times the round trip. "put" sends the token: a 200 with a
 * "version" is expected, then the route is polled every 2 ms until the new
 * header value shows (up to 1 s). "upload" is the control: the same bytes
 * with a wrong token, refused with 401 unparsed, and the route asked once
 * after each, as a PUT's first check does. A PUT slower than the interval
 * skips the slots it overran. One JSON line per PUT:
 *
 *   {"variant": "b", "ms": 51.2, "status": 200, "version": 7, "seen_ms": 1.3}
 *
 * with "err" instead of what went wrong, then {"done": true}. Exits at the
 * end of stdin.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define IO_TIMEOUT_MS 10000
#define PROBE_TIMEOUT_MS 2000

struct resp {
	int status;
	long clen;             /* -1: none */
	bool close;
	char value[64];        /* the HEADER value, "" if absent */
	char body[512];        /* the first bytes of the body */
	size_t body_len;
};

static const char *g_host, *g_path, *g_header;
static char *g_req[2][2];      /* [put, upload][variant a, b] */
static size_t g_req_len[2][2];
static int g_probe = -1;       /* the kept-alive check connection */
static char g_pbuf[HEAD_MAX];  /* bytes read on it past the last response */
static size_t g_plen;

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
	if (ms <= 0)
		return;
	struct timespec t = { (time_t)(ms / 1e3), (long)((ms - (time_t)(ms / 1e3) * 1e3) * 1e6) };
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 20, n = 0;
	char *b = malloc(cap);
	for (;;) {
		if (b == NULL)
			break;
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		char *nb = realloc(b, cap *= 2);
		if (nb == NULL)
			free(b);
		b = nb;
	}
	if (ferror(f)) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = n;
	return b;
}

static int connect_port(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Blocking I/O bounded by timeout_ms for each wait. */
static bool wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	return r > 0;
}

static bool send_all(int fd, const char *b, size_t n, int timeout_ms)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, timeout_ms))
			continue;
		return false;
	}
	return true;
}

static ssize_t recv_some(int fd, char *b, size_t n, int timeout_ms)
{
	if (!wait_fd(fd, POLLIN, timeout_ms)) {
		errno = ETIMEDOUT;
		return -1;
	}
	ssize_t r;
	while ((r = recv(fd, b, n, 0)) < 0 && errno == EINTR)
		;
	return r;
}

/* Parses a response head (up to and without its blank line) into r. */
static bool parse_head(const char *h, size_t n, struct resp *r)
{
	r->status = 0;
	r->clen = -1;
	r->close = false;
	r->value[0] = '\0';
	if (n < 12 || strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ')
		return false;
	r->status = atoi(h + 9);
	const char *end = h + n, *p = memchr(h, '\n', n);
	size_t hl = strlen(g_header);
	while (p != NULL && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol != NULL ? eol : end;
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (colon != NULL) {
			size_t kl = (size_t)(colon - p);
			const char *v = colon + 1, *ve = le;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			size_t vl = (size_t)(ve - v);
			if (kl == 14 && strncasecmp(p, "content-length", 14) == 0)
				r->clen = strtol(v, NULL, 10);
			else if (kl == 10 && strncasecmp(p, "connection", 10) == 0)
				r->close = vl == 5 && strncasecmp(v, "close", 5) == 0;
			else if (kl == hl && strncasecmp(p, g_header, hl) == 0 && vl < sizeof(r->value)) {
				memcpy(r->value, v, vl);
				r->value[vl] = '\0';
			}
		}
		p = eol;
	}
	return r->status >= 100;
}

/* Reads one response on fd into r; buf/len hold what was read past the
 * previous one (and keep what is read past this one). Keeps the first
 * bytes of the body in r->body. */
static bool read_resp(int fd, char *buf, size_t *len, struct resp *r, int timeout_ms)
{
	char *eoh;
	while ((eoh = memmem(buf, *len, "\r\n\r\n", 4)) == NULL) {
		if (*len == HEAD_MAX)
			return false;
		ssize_t n = recv_some(fd, buf + *len, HEAD_MAX - *len, timeout_ms);
		if (n <= 0)
			return false;
		*len += (size_t)n;
	}
	size_t hlen = (size_t)(eoh - buf);
	if (!parse_head(buf, hlen, r))
		return false;
	size_t used = hlen + 4, have = *len - used;
	r->body_len = 0;
	/* without a Content-Length the body runs to the close */
	long want = r->clen;
	for (;;) {
		size_t take = want >= 0 && have > (size_t)want ? (size_t)want : have;
		size_t keep = sizeof(r->body) - 1 - r->body_len;
		memcpy(r->body + r->body_len, buf + used, take < keep ? take : keep);
		r->body_len += take < keep ? take : keep;
		used += take;
		if (want >= 0)
			want -= (long)take;
		memmove(buf, buf + used, *len - used);
		*len -= used;
		used = 0;
		if (want == 0)
			break;
		ssize_t n = recv_some(fd, buf + *len, HEAD_MAX - *len, timeout_ms);
		if (n < 0)
			return false;
		if (n == 0) {
			if (want > 0)
				return false;
			break;
		}
		*len += (size_t)n;
		have = *len;
	}
	r->body[r->body_len] = '\0';
	return true;
}

static void probe_close(void)
{
	if (g_probe >= 0)
		close(g_probe);
	g_probe = -1;
	g_plen = 0;
}

/* The loaded route's HEADER value now into out; false on a failure (once
 * more on a fresh connection first). */
static bool serving(int port, char *out, size_t outlen)
{
	char req[1024];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", g_path, g_host);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct resp r;
		if (g_probe < 0 && (g_probe = connect_port(port)) < 0)
			continue;
		if (!send_all(g_probe, req, (size_t)n, PROBE_TIMEOUT_MS) ||
		    !read_resp(g_probe, g_pbuf, &g_plen, &r, PROBE_TIMEOUT_MS) || r.clen < 0) {
			probe_close();
			continue;
		}
		if (r.close)
			probe_close();
		if (r.status != 200)
			return false;
		snprintf(out, outlen, "%s", r.value);
		return true;
	}
	return false;
}

/* One PUT: a fresh connection, the whole request, the whole response. */
static bool put_once(int port, const char *req, size_t len, struct resp *r)
{
	static char buf[HEAD_MAX];
	size_t blen = 0;
	int fd = connect_port(port);
	if (fd < 0)
		return false;
	bool ok = send_all(fd, req, len, IO_TIMEOUT_MS) && read_resp(fd, buf, &blen, r, IO_TIMEOUT_MS);
	close(fd);
	return ok;
}

/* The body's text as a JSON string's contents (quotes and controls out). */
static void json_text(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *s != '\0' && o + 7 < outlen; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, outlen - o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

static void run_cell(int admin_port, int proxy_port, double interval_ms, bool upload,
		     double seconds, double delay, char *cur)
{
	sleep_ms(delay * 1e3);
	double t0 = now_ms();
	for (long k = 0;;) {
		double due = t0 + k * interval_ms;
		if (due > t0 + seconds * 1e3)
			break;
		sleep_ms(due - now_ms());
		char nxt = *cur == 'a' ? 'b' : 'a';
		char line[1024], err[600] = "";
		int o = snprintf(line, sizeof(line), "{\"variant\": \"%c\"", nxt);
		struct resp r = { 0 };
		double start = now_ms();
		bool ok = put_once(admin_port, g_req[upload][nxt - 'a'], g_req_len[upload][nxt - 'a'], &r);
		o += snprintf(line + o, sizeof(line) - (size_t)o, ", \"ms\": %.3f", now_ms() - start);
		long version = -1;
		if (!ok) {
			o += snprintf(line + o, sizeof(line) - (size_t)o, ", \"status\": null");
			snprintf(err, sizeof(err), "no response from the admin listener: %s", strerror(errno));
		} else {
			o += snprintf(line + o, sizeof(line) - (size_t)o, ", \"status\": %d", r.status);
			const char *v;
			if (upload) {
				if (r.status != 401)
					snprintf(err, sizeof(err), "upload control: expected 401, got %d", r.status);
			} else if (r.status != 200) {
				json_text(r.body, err, sizeof(err));
			} else if ((v = strstr(r.body, "\"version\"")) != NULL &&
				   (v = strchr(v, ':')) != NULL) {
				char *e;
				version = strtol(v + 1, &e, 10);
				if (e == v + 1)
					version = -1;
			}
			if (!upload && r.status == 200 && version < 0)
				snprintf(err, sizeof(err), "200 without a version");
		}
		if (version >= 0)
			o += snprintf(line + o, sizeof(line) - (size_t)o, ", \"version\": %ld", version);
		char val[64];
		if (upload) {
			serving(proxy_port, val, sizeof(val));  /* as a PUT's first check */
		} else if (ok && r.status == 200) {
			double done = now_ms();
			while (now_ms() - done < 1000) {
				if (serving(proxy_port, val, sizeof(val)) && val[0] == nxt && val[1] == '\0') {
					o += snprintf(line + o, sizeof(line) - (size_t)o,
						      ", \"seen_ms\": %.3f", now_ms() - done);
					*cur = nxt;
					break;
				}
				sleep_ms(2);
			}
		}
		if (err[0] != '\0')
			o += snprintf(line + o, sizeof(line) - (size_t)o, ", \"err\": \"%s\"", err);
		printf("%s}\n", line);
		fflush(stdout);
		/* a PUT slower than the interval skips the slots it overran */
		long next = (long)((now_ms() - t0) / interval_ms) + 1;
		k = next > k + 1 ? next : k + 1;
	}
	printf("{\"done\": true}\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: put_client ADMIN_PORT PROXY_PORT TOKEN INTERVAL_S HOST PATH "
			"HEADER DOC_A DOC_B\n");
		return 2;
	}
	int admin_port = atoi(argv[1]), proxy_port = atoi(argv[2]);
	double interval_ms = atof(argv[4]) * 1e3;
	g_host = argv[5];
	g_path = argv[6];
	g_header = argv[7];
	if (admin_port <= 0 || proxy_port <= 0 || interval_ms <= 0) {
		fprintf(stderr, "put_client: bad port or interval\n");
		return 2;
	}
	for (int v = 0; v < 2; v++) {
		size_t len;
		char *doc = read_file(argv[8 + v], &len);
		if (doc == NULL) {
			fprintf(stderr, "put_client: cannot read %s: %s\n", argv[8 + v], strerror(errno));
			return 1;
		}
		for (int up = 0; up < 2; up++) {
			char head[512];
			int hn = snprintf(head, sizeof(head),
					  "PUT /config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
					  "Authorization: Bearer %s%s\r\nContent-Type: application/json\r\n"
					  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
					  up ? "not-" : "", argv[3], len);
			if (hn < 0 || (size_t)hn >= sizeof(head)) {
				fprintf(stderr, "put_client: token too long\n");
				return 2;
			}
			g_req[up][v] = malloc((size_t)hn + len);
			if (g_req[up][v] == NULL) {
				fprintf(stderr, "put_client: out of memory\n");
				return 1;
			}
			memcpy(g_req[up][v], head, (size_t)hn);
			memcpy(g_req[up][v] + hn, doc, len);
			g_req_len[up][v] = (size_t)hn + len;
		}
		free(doc);
	}
	char cur[64];
	if (!serving(proxy_port, cur, sizeof(cur)) || (strcmp(cur, "a") != 0 && strcmp(cur, "b") != 0))
		strcpy(cur, "a");
	printf("{\"ready\": true}\n");
	fflush(stdout);
	char cmd[256];
	while (fgets(cmd, sizeof(cmd), stdin) != NULL) {
		char mode[16];
		double seconds, delay;
		if (sscanf(cmd, "%15s %lf %lf", mode, &seconds, &delay) != 3 ||
		    (strcmp(mode, "put") != 0 && strcmp(mode, "upload") != 0)) {
			fprintf(stderr, "put_client: bad command %s", cmd);
			return 2;
		}
		run_cell(admin_port, proxy_port, interval_ms, strcmp(mode, "upload") == 0, seconds,
			 delay, cur);
	}
	probe_close();
	for (int up = 0; up < 2; up++)
		for (int v = 0; v < 2; v++)
			free(g_req[up][v]);
	return 0;
}
