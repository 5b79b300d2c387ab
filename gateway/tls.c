/* tls.c - see tls.h. */
#include "tls.h"

bool gw_tls_ktls_available(void)
{
    return false;
}
