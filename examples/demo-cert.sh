#!/bin/sh
# A self-signed ECDSA P-256 certificate for localhost, for the demo's HTTPS
# listener (examples/demo.json).  Made once, into build/demo/.
set -e
cd "$(dirname "$0")/.."
mkdir -p build/demo
[ -s build/demo/demo.pem ] && [ -s build/demo/demo.key ] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout build/demo/demo.key -out build/demo/demo.pem 2>/dev/null
