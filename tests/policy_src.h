/* The policy module's sources, for tests that #include the config parser
 * (route_config.c calls into policy/): one list to extend with a new file. */
#include "../policy/policy.c"
#include "../policy/txn.c"
#include "../policy/access.c"
#include "../policy/pfile.c"
#include "../policy/apikey.c"
#include "../policy/basic.c"
#include "../policy/fwdauth.c"
#include "../policy/b64url.c"
#include "../policy/jwks.c"
#include "../policy/jwt.c"
#include "../policy/jwt_conf.c"
#include "../policy/jwtauth.c"
