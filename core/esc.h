/*
 * esc.h - bytes from the network made safe for a log line.
 *
 * Every byte a client or backend chose is hostile in a log: a quote ends a
 * quoted field early, a newline forges a line, an escape sequence drives
 * the reader's terminal.  These append one field to an sbuf, escaped, and
 * cut at a budget with a visible marker ("...[+N]", N the bytes not
 * written) rather than padding or overrunning.
 */
#ifndef SLUICE_CORE_ESC_H
#define SLUICE_CORE_ESC_H

#include <stddef.h>
#include "sbuf.h"

/* The longest cut marker: "...[+" 20 digits "]". */
#define ESC_MARK_MAX 26

enum esc_style {
    ESC_TEXT,   /* '"', '\\', CTLs, DEL and bytes >= 0x80 as \xHH (nginx's escaping) */
    ESC_JSON,   /* inside a JSON string: \" \\ and \u00XX for CTLs, DEL, >= 0x80 */
    ESC_LOG,    /* an error log message: like TEXT (backslash too), but quotes are left as they are */
};

/* Append p[0, n) escaped, using at most max bytes of s (0 = no budget;
 * never more than the sbuf's room): when the escaped field is longer, the
 * whole escapes that fit before the marker are written, then the marker.
 * A budget too small for even "...[+n]" gets as many dots as fit.  An
 * escape is never split.  No quotes are added. */
void esc_put(struct sbuf *s, const char *p, size_t n, enum esc_style st, size_t max);

#endif
