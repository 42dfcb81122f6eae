#!/bin/sh
# Usage: caddycheck.sh CADDY CADDYFILE VERSION
# Validates the Caddyfile twice: with the default site (localhost: Caddy's local CA) and with a
# public name (ACME), the two ways a host runs it. --validate provisions every module, so a bad
# matcher, placeholder or subdirective fails here rather than at `docker compose up`.
# Then `caddy fmt`, so the file stays in the one canonical layout. Prints one line.
set -eu
caddy=$1 file=$2 version=$3
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for domain in localhost gpulab.example.org; do
	if ! GPULAB_DOMAIN=$domain "$caddy" adapt --config "$file" --validate >"$out" 2>&1; then
		echo "FAIL  Caddyfile              caddy $version adapt --validate (GPULAB_DOMAIN=$domain):"
		grep -v '"level":"info"' "$out" | sed 's/^/      /'
		exit 1
	fi
done
if ! "$caddy" fmt "$file" >/dev/null 2>"$out"; then
	echo "FAIL  Caddyfile              not in caddy fmt form; run: $caddy fmt --overwrite $file"
	exit 1
fi
echo "ok    Caddyfile              caddy $version: adapt --validate (localhost and a public name), fmt"
