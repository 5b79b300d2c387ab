#!/bin/sh
# Install the Debian packages sluice needs to build, test and benchmark.
# Only what is missing is installed; without root it just says what is missing.
PKGS="build-essential pkg-config libevent-dev libssl-dev libc-ares-dev libcjson-dev libyaml-dev
      libhiredis-dev redis-server
      clang libclang-rt-14-dev python3 curl wrk nginx-light haproxy openssl
      chromium chromium-driver python3-selenium python3-kubernetes prometheus
      python3-jwt python3-cryptography"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing (run 'make deps' as root)" >&2
    exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
# nginx/haproxy are only load-test peers: do not let their packages start system services
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
apt-get install -y -qq --no-install-recommends $missing >/dev/null
rc=$?
rm -f /usr/sbin/policy-rc.d
[ $rc = 0 ] || { echo "deps: apt-get install failed" >&2; exit 1; }
