#!/bin/sh
# Usage: deploy/kubernetes/make-secrets.sh OVERLAY_DIR
# Creates OVERLAY_DIR/secrets/ (mode 700) from OVERLAY_DIR/secrets.example/: every `change-me-...`
# value becomes 64 random hex characters (URL-safe: the database passwords go into URLs). A file
# that already exists is left alone, so running it again never replaces a secret (the CA
# passphrase and the audit key cannot be changed without losing the CA's key or the audit chain).
# Values without a placeholder (the SMTP login) are copied as they are: edit them afterwards.
set -eu
overlay=${1:?usage: $0 OVERLAY_DIR}
example=$overlay/secrets.example
target=$overlay/secrets
[ -d "$example" ] || { echo "$0: no $example" >&2; exit 1; }
umask 077
mkdir -p "$target"
for file in "$example"/*.env; do
	out=$target/$(basename "$file")
	if [ -e "$out" ]; then
		echo "kept     $out"
		continue
	fi
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in
		*=change-me-*) printf '%s=%s\n' "${line%%=*}" "$(openssl rand -hex 32)" ;;
		*) printf '%s\n' "$line" ;;
		esac
	done <"$file" >"$out"
	echo "created  $out"
done
