#include "hostname.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* h (no wildcard) lies under the wildcard w ("*.sfx"): at least one label
 * in front of ".sfx" */
static bool under(const char *h, const char *w)
{
    size_t hl = strlen(h), sl = strlen(w + 1);      /* ".sfx" */
    return hl > sl && strcasecmp(h + hl - sl, w + 1) == 0;
}

const char *k8s_host_intersect(const char *l, const char *h)
{
    if (l == NULL)
        return h;
    if (strcasecmp(l, h) == 0)
        return h;
    bool lw = l[0] == '*', hw = h[0] == '*';
    if (lw && !hw)
        return under(h, l) ? h : NULL;
    if (!lw && hw)
        return under(l, h) ? l : NULL;
    if (lw && hw) {
        /* "*.a.b" within "*.b": the narrower one */
        if (under(h + 2, l))
            return h;
        if (under(l + 2, h))
            return l;
    }
    return NULL;
}

bool k8s_host_wider(const char *wide, const char *narrow)
{
    if (narrow == NULL)
        return false;
    if (wide == NULL)
        return true;
    if (wide[0] != '*' || strcasecmp(wide, narrow) == 0)
        return false;
    return under(narrow[0] == '*' ? narrow + 2 : narrow, wide);
}

bool k8s_host_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return false;
    if (h[0] == '*') {
        if (h[1] != '.' || h[2] == '\0')
            return false;
        h += 2;
    }
    bool all_digits = true;
    size_t label = 0;
    for (const char *p = h; ; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-')
                return false;
            if (*p == '\0')
                break;
            label = 0;
            continue;
        }
        if (label == 0 && *p == '-')
            return false;
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return false;
        if (!isdigit((unsigned char)*p))
            all_digits = false;
        label++;
    }
    return !all_digits;     /* an IPv4 address is not a hostname */
}
