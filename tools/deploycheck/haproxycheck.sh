#!/bin/sh
# Usage: haproxycheck.sh HAPROXY_CFG COMPOSE_YAML
# Validates grpc-front's configuration with `haproxy -c`, the haproxy of Debian's package (`make
# system-deps` installs it as root), after checking that it is the minor compose's haproxy image
# runs. Without haproxy the check is reported as NOT RUN, never as passed. Prints one line.
set -eu
cfg=$1 compose=$2
haproxy=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)
if [ ! -x "$haproxy" ]; then
	echo "SKIP  haproxy.cfg            NOT VALIDATED: haproxy is not installed (as root, make system-deps installs it; or: sudo apt-get install haproxy)"
	exit 0
fi
version=$("$haproxy" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
image=$(sed -n 's/^ *image: haproxy:\([0-9]*\.[0-9]*\).*/\1/p' "$compose" | head -n 1)
if [ "$version" != "$image" ]; then
	echo "FAIL  haproxy.cfg            compose runs haproxy $image but this machine's haproxy is $version; keep them on one minor"
	exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! "$haproxy" -c -f "$cfg" >"$out" 2>&1; then
	echo "FAIL  haproxy.cfg            haproxy $version -c:"
	sed 's/^/      /' "$out"
	exit 1
fi
echo "ok    haproxy.cfg            haproxy $version -c"
