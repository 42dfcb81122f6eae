# Sourced by the fake commands: they live in <fake root>/bin, and each call
# is appended to <fake root>/calls.log as one line, arguments tab-separated.
root=$(cd "$(dirname "$0")/.." && pwd)
{
	printf '%s' "$(basename "$0")"
	for a in "$@"; do printf '\t%s' "$a"; done
	printf '\n'
} >>"$root/calls.log"

# exists FILE NAME: whether FILE (passwd, group) has an entry NAME.
exists() { cut -d: -f1 "$1" | grep -qxF "$2"; }

# edit FILE AWK-PROGRAM [awk args]: rewrite FILE through awk, atomically.
edit() {
	f=$1; shift
	awk -F: -v OFS=: "$@" "$f" >"$f.new" && mv "$f.new" "$f"
}
