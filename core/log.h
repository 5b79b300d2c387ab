/*
 * log.h - the error log (stderr, levelled) and the access log.
 *
 * The access log is buffered per worker and written in whole lines (so lines
 * of different workers never interleave), when the buffer fills and on the
 * worker's 200 ms tick, so a request costs one snprintf and no syscall.
 *
 * Owns: the error log's level and format, the access log buffer.  May call:
 * core/ (esc, sbuf) and libc; every module may log through it.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>
#include <stdarg.h>

enum gw_level { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

extern int gw_log_level;

void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define GW_ALOG_CAP (64 * 1024)

struct gw_alog {
    int fd;             /* -1 = no access log */
    size_t len;
    char *buf;          /* GW_ALOG_CAP bytes, allocated when fd >= 0 */
};

/* Open the access log target ("stdout", "stderr", a path, or NULL for none).
 * Returns an fd (or -1 for none, -2 on error with errno set). */
int gw_alog_open(const char *target);
void gw_alog_set(struct gw_alog *a, int fd);    /* fd owned by the caller */
void gw_alog_append(struct gw_alog *a, const char *line, size_t len);
void gw_alog_flush(struct gw_alog *a);
void gw_alog_free(struct gw_alog *a);

/* Format wall-clock time as 2026-11-22T15:04:05.123Z into out (>= 25 bytes). */
size_t gw_time_iso(char *out, size_t cap);

#endif
