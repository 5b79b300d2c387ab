/*
 * hostname.h - (k8s) Gateway API hostname rules: a route's hostnames
 * intersected with a listener's.
 *
 * Owns: nothing.  May call: libc.
 */
#ifndef SLUICE_K8S_HOSTNAME_H
#define SLUICE_K8S_HOSTNAME_H

#include <stdbool.h>

/* The hostname both a listener with hostname l (NULL = any) and a route
 * hostname h accept, or NULL when they share none: equal names; a name
 * under a wildcard ("foo.example.com" and "*.example.com"); of two
 * wildcards, the narrower.  The result is l or h itself. */
const char *k8s_host_intersect(const char *l, const char *h);
/* Does a listener with hostname wide (NULL = any) accept every host one
 * with hostname narrow accepts, and more?  ("*.example.com" is wider than
 * "foo.example.com" and "*.foo.example.com"; NULL is wider than any name.) */
bool k8s_host_wider(const char *wide, const char *narrow);
/* A valid Gateway API hostname: DNS labels (lowercase letters, digits,
 * '-'), optionally "*." in front, no port, no IP address. */
bool k8s_host_valid(const char *h);

#endif
