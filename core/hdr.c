/* hdr.c - header name classes (see hdr.h). */
#include "hdr.h"

static bool ieq(const char *a, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c | 0x20);
        if (c != lit[i])
            return false;
    }
    return true;
}

enum hdr_class hdr_class(const char *n, size_t len)
{
#define IS(lit) (len == sizeof(lit) - 1 && ieq(n, lit, len))
    switch (len) {
    case 2: if (IS("te")) return HDR_HOP; break;
    case 4: if (IS("host")) return HDR_HOST; break;
    case 6: if (IS("expect")) return HDR_EXPECT; break;
    case 9: if (IS("x-auth-id")) return HDR_XAUTHID; break;
    case 7: if (IS("upgrade")) return HDR_UPGRADE; if (IS("trailer")) return HDR_HOP; break;
    case 10: if (IS("connection")) return HDR_CONNECTION; if (IS("keep-alive")) return HDR_HOP; break;
    case 12: if (IS("x-request-id")) return HDR_XRID; break;
    case 14:
        if (IS("content-length")) return HDR_FRAMING;
        if (IS("http2-settings")) return HDR_HOP;   /* goes with a refused h2c upgrade */
        break;
    case 15: if (IS("x-forwarded-for")) return HDR_XFF; break;
    case 16: if (IS("proxy-connection")) return HDR_HOP; if (IS("x-forwarded-host")) return HDR_XFHOST; break;
    case 17: if (IS("x-forwarded-proto")) return HDR_XFPROTO; if (IS("transfer-encoding")) return HDR_FRAMING; break;
    }
    return HDR_OTHER;
#undef IS
}

bool hdr_managed(const char *name, size_t len)
{
    enum hdr_class c = hdr_class(name, len);
    return c == HDR_HOST || c == HDR_CONNECTION || c == HDR_HOP || c == HDR_UPGRADE ||
           c == HDR_EXPECT || c == HDR_FRAMING;
}
