#!/bin/sh
# Usage: caddycheck.sh CADDY CADDYFILE VERSION
# Validates the Caddyfile three times: with the default site (localhost: Caddy's local CA), with a
# public name (ACME), the two ways a host runs it, and as Kubernetes' web pod runs it (":8080":
# plain HTTP on 8080 behind the Ingress, which must then be its only listener: no certificate, no
# port 80 or 443). --validate provisions every module, so a bad matcher, placeholder or
# subdirective fails here rather than at `docker compose up`.
# Then `caddy fmt`, so the file stays in the one canonical layout. Prints one line.
set -eu
caddy=$1 file=$2 version=$3
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for domain in localhost gpulab.example.org :8080; do
	if ! GPULAB_DOMAIN=$domain "$caddy" adapt --config "$file" --validate >"$out" 2>&1; then
		echo "FAIL  Caddyfile              caddy $version adapt --validate (GPULAB_DOMAIN=$domain):"
		grep -v '"level":"info"' "$out" | sed 's/^/      /'
		exit 1
	fi
done
# The last run was ":8080" (deploy/kubernetes/base/web.yaml): one server, on :8080 only.
if [ "$(grep -o '"listen":\[[^]]*\]' "$out" | sort -u)" != '"listen":[":8080"]' ]; then
	echo "FAIL  Caddyfile              with GPULAB_DOMAIN=:8080 (the Kubernetes web pod) caddy must listen on :8080 alone:"
	grep -o '"listen":\[[^]]*\]' "$out" | sed 's/^/      /'
	exit 1
fi
if ! "$caddy" fmt "$file" >/dev/null 2>"$out"; then
	echo "FAIL  Caddyfile              not in caddy fmt form; run: $caddy fmt --overwrite $file"
	exit 1
fi
echo "ok    Caddyfile              caddy $version: adapt --validate (localhost, a public name, :8080 for Kubernetes), fmt"
