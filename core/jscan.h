/*
 * jscan.h - (core) finding the extent of JSON values in text without
 * parsing them: only strings, brackets and commas are read.
 *
 * Owns: nothing.  May call: libc.  gateway/config.c uses it to find where
 * each route's text sits in a document, so that a reload can reuse the
 * routes whose text did not change.  The scanner checks no more than it
 * needs to find an extent: what it finds is parsed (or compared byte for
 * byte with text that was) before anything trusts it.
 */
#ifndef SLUICE_CORE_JSCAN_H
#define SLUICE_CORE_JSCAN_H

#include <stddef.h>
#include <stdint.h>

/* The index of the first byte at or after i that is not JSON whitespace,
 * or n. */
size_t js_ws(const char *s, size_t n, size_t i);
/* s[i] is '"': the index after the closing quote, or n. */
size_t js_str(const char *s, size_t n, size_t i);
/* The index after the value at s[i] (not checked beyond its extent), or n. */
size_t js_value(const char *s, size_t n, size_t i);
/* After a value inside an array or object (close is ']' or '}'), blanks
 * skipped from *i: 1 when a ',' follows (*i then at the next value, blanks
 * skipped), 0 when close follows (*i at it), -1 for anything else. */
int js_sep(const char *s, size_t n, size_t *i, char close);
/* A fast hash of n bytes of text (not for keys an attacker chooses). */
uint64_t js_hash(const char *p, size_t n);

#endif
