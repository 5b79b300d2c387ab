/* tap.h - a tiny TAP harness for the unit tests.  Each test binary prints
 * "ok N - name" / "not ok N - name" lines and, last, "# N passed, M failed". */
#ifndef SLUICE_TAP_H
#define SLUICE_TAP_H
#include <stdio.h>
#include <stdarg.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3)))
static int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)

static inline int tap_done(void)
{
    printf("# %d passed, %d failed\n", tap_n - tap_failed, tap_failed);
    return tap_failed ? 1 : 0;
}
#endif
