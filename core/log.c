/* log.c - error log and buffered access log. */
#include "log.h"
#include "esc.h"
#include "sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int gw_log_level = GW_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

size_t gw_time_iso(char *out, size_t cap)
{
    /* the date part changes once a second: format it once a second per thread */
    static __thread time_t cached_sec = -1;
    static __thread char cached[64];
    struct timespec ts;

    if (cap < 25)
        return 0;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d.",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = ts.tv_sec;
    }
    memcpy(out, cached, 20);
    int ms = (int)(ts.tv_nsec / 1000000);
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
    return 24;
}

/* Messages carry bytes peers chose (a target's name, a TLS alert, a
 * header): each is escaped as in the access log, so a line is one line and
 * holds no control byte. */
void gw_log(int level, const char *fmt, ...)
{
    char msg[1024], line[2048];
    va_list ap;

    if (level < gw_log_level)
        return;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    struct sbuf s = sb_init(line, sizeof(line) - 1);
    s.len = gw_time_iso(line, sizeof(line));
    SB_LIT(&s, " [");
    sb_str(&s, level_names[level & 3]);
    SB_LIT(&s, "] ");
    esc_put(&s, msg, (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1, ESC_LOG, 0);
    line[s.len++] = '\n';
    /* one write per line: lines from different threads do not interleave */
    ssize_t r = write(STDERR_FILENO, line, s.len);
    (void)r;
}

int gw_alog_open(const char *target)
{
    if (target == NULL)
        return -1;
    if (strcmp(target, "stdout") == 0)
        return dup(STDOUT_FILENO);
    if (strcmp(target, "stderr") == 0)
        return dup(STDERR_FILENO);
    int fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd == -1 ? -2 : fd;
}

void gw_alog_set(struct gw_alog *a, int fd)
{
    gw_alog_flush(a);
    a->fd = fd;
    if (fd >= 0 && a->buf == NULL) {
        a->buf = malloc(GW_ALOG_CAP);
        if (a->buf == NULL)
            abort();
    }
}

void gw_alog_flush(struct gw_alog *a)
{
    size_t off = 0;

    while (a->fd >= 0 && off < a->len) {
        ssize_t n = write(a->fd, a->buf + off, a->len - off);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            break;      /* a broken log must not stop the proxy */
        }
        off += (size_t)n;
    }
    a->len = 0;
}

void gw_alog_append(struct gw_alog *a, const char *line, size_t len)
{
    if (a->fd < 0)
        return;
    if (a->len + len > GW_ALOG_CAP)
        gw_alog_flush(a);
    if (len > GW_ALOG_CAP)
        len = GW_ALOG_CAP;
    memcpy(a->buf + a->len, line, len);
    a->len += len;
}

void gw_alog_free(struct gw_alog *a)
{
    gw_alog_flush(a);
    free(a->buf);
    a->buf = NULL;
}
