/*
 * httpmsg.h - (core) the plain data of an HTTP message that more than one
 * module reads: a header line as two slices of the buffer it was parsed
 * from.
 *
 * Owns: nothing but the type.  May call: nothing.  The codec
 * (gateway/http1) fills arrays of it in place, and the router matches them
 * as they are (router.h, struct rt_request): one type, so a lookup reads
 * the parsed headers without copying them.  The name is the codec's, which
 * every user of the parsed message already spells.
 */
#ifndef SLUICE_CORE_HTTPMSG_H
#define SLUICE_CORE_HTTPMSG_H

#include <stdint.h>

struct h1_header {
    const char *name;
    const char *value;      /* leading and trailing OWS removed */
    uint32_t name_len;
    uint32_t value_len;
};

#endif
