/* The policy module's sources, for tests that #include the config parser
 * (route_config.c calls into policy/): one list to extend with a new file. */
#include "../policy/policy.c"
#include "../policy/txn.c"
#include "../policy/access.c"
#include "../policy/pfile.c"
#include "../policy/apikey.c"
#include "../policy/basic.c"
#include "../policy/fwdauth.c"
#include "../policy/limit.c"
#include "../policy/rate.c"
#include "../policy/redis.c"
#include "../policy/usage.c"
/* redis.c logs through core/log (so its tests link the log and its escaper) */
#include "../core/esc.c"
#include "../core/log.c"
