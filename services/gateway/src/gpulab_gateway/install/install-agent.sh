#!/usr/bin/env bash
# install-agent.sh: installs the gpulab agent on a GPU node, enrolls the node with the control
# plane and starts the agent as a systemd service. The control plane prints the command:
#
#   { curl -fsSL <PUBLIC_URL>/install-agent.sh && printf '%s\n' <TOKEN>; } | sudo bash -s -- \
#     --url <PUBLIC_URL> --ca-fingerprint <64 hex> --token-file -
#
# The token never appears on a command line, where every user of the node could read it (ps,
# /proc/PID/cmdline): printf is a shell builtin, and the token is the line that follows this script
# on bash's standard input (bash reads a script from a pipe no further than the command it runs, so
# main's `read` gets the next line). Run from a file, `--token-file FILE` reads it from FILE, and
# `--token-file -` from standard input (asking for it, unechoed, on a terminal).
#
# It fails loudly and leaves the node as it was on any error: it downloads and checks the agent,
# and enrolls with it, in a private temporary folder before it installs anything; once it has
# started installing, a failure puts back every file it replaced and removes every one it added.
# (Enrollment uses up the one-time token: after a failure the admin issues a new one.)
#
# The agent's `enroll` contract, as this script calls it:
#   gpulab-agent enroll --server <enroll host:port> --ca-sha256 <64 lowercase hex> --dir <dir> \
#     --token-file - <<<"<token>"
# The token travels on standard input, not in argv, so that other users cannot read it in `ps`.
# The agent pins the CA by --ca-sha256 in the TLS handshake before it sends the token. It writes
# node.key, node.pem, ca.pem and agent.json (0600) into --dir; exit 0 on success, 1 on a failure,
# 2 on a bad command line, with a message on stderr.
#
# The service runs `gpulab-agent run --dir /etc/gpulab`: the same folder as enroll's --dir, which
# also holds agent.env and the agent's last desired state. `run` exits 78 (EX_CONFIG) when the node
# must enroll again (certificate revoked, expired or unknown); the unit lists that status in
# RestartPreventExitStatus= so that systemd does not restart a revoked node over and over.
#
# Exit status: 0 done, 2 a bad command line (nothing was done), 1 any other failure.
#
# Test hooks (never set them on a real node):
#   GPULAB_INSTALL_ROOT  prefixes every absolute path this script writes (default empty); when it
#                        is set, the checks for root and for a running systemd are skipped.
#   GPULAB_SYSTEMCTL     the systemctl this script calls (default: systemctl).
#
# bash 4 or newer; no eval; every expansion quoted.
set -euo pipefail
umask 077

readonly PROG="install-agent"
readonly ARTIFACT="gpulab-agent-linux-amd64"
readonly SERVICE="gpulab-agent"
readonly DEFAULT_ENROLL_PORT=50051 # the Enrollment gRPC port (API.md, GPULAB_ENROLL_PORT)

ROOT="${GPULAB_INSTALL_ROOT:-}"
ROOT="${ROOT%/}"
SYSTEMCTL="${GPULAB_SYSTEMCTL:-systemctl}"

BIN_PATH="${ROOT}/usr/local/bin/gpulab-agent"
# The agent's folder: its identity (enroll --dir), agent.env, and what `run` keeps there. It is
# installed, and replaced by --force, as a whole.
CONFIG_DIR="${ROOT}/etc/gpulab"
ENV_PATH="${CONFIG_DIR}/agent.env"
UNIT_PATH="${ROOT}/etc/systemd/system/${SERVICE}.service"

URL=""
TOKEN=""
TOKEN_FILE=""
FINGERPRINT=""
ENROLL_ENDPOINT=""
FORCE=0

WORK_DIR=""
# What this run changed, for the rollback: JOURNAL_TARGETS[i] was replaced by this run and its
# previous version is at JOURNAL_BACKUPS[i] ("" when there was none); CREATED_DIRS were made by
# this run; LEFTOVERS are half-written files to remove.
JOURNAL_TARGETS=()
JOURNAL_BACKUPS=()
CREATED_DIRS=()
LEFTOVERS=()
INSTALLING=0
COMMITTED=0
WAS_ENABLED=0
WAS_ACTIVE=0
ROLLBACK_FAILED=0
SERVICE_TOUCHED=0

usage() {
	cat <<USAGE
usage: install-agent.sh --url URL --ca-fingerprint SHA256 --token-file FILE|- [options]

Installs the gpulab agent on this node, enrolls the node and starts the agent (systemd).

  --url URL                  the control plane's public URL (https://...; http:// only for localhost)
  --ca-fingerprint SHA256    SHA-256 of the control plane's CA certificate (64 hex digits)
  --token-file FILE|-        where the one-time enrollment token is: the first line of FILE, or of
                             standard input for - (in the control plane's command: the line after
                             this script). Never on the command line, which every user can read.
  --enroll-endpoint HOST:PORT  where the agent enrolls (default: the URL's host, port ${DEFAULT_ENROLL_PORT})
  --force                    enroll again even though this node is already enrolled
  --help                     print this help
USAGE
}

say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${PROG}" "$*" >&2
	exit 1
}
usage_error() {
	printf '%s: error: %s (see --help)\n' "${PROG}" "$*" >&2
	exit 2
}

# The host part of an http(s) URL, brackets kept for IPv6: "https://[::1]:8080/x" -> "[::1]".
url_host() {
	local rest="${1#*://}"
	rest="${rest%%/*}"
	if [[ "${rest}" == \[* ]]; then
		printf '%s\n' "${rest%%]*}]"
	else
		printf '%s\n' "${rest%%:*}"
	fi
}

parse_args() {
	while [ "$#" -gt 0 ]; do
		local flag="$1" value=""
		case "${flag}" in
		--help | -h)
			usage
			exit 0
			;;
		--force)
			FORCE=1
			shift
			continue
			;;
		--token | --token=*)
			# Never echoed: the value is the secret this refusal keeps off command lines.
			usage_error "--token is refused: every user of this node can read a command line (ps); give the token with --token-file FILE or --token-file - (the control plane's install command does)"
			;;
		--url=* | --token-file=* | --ca-fingerprint=* | --enroll-endpoint=*)
			value="${flag#*=}"
			flag="${flag%%=*}"
			shift
			;;
		--url | --token-file | --ca-fingerprint | --enroll-endpoint)
			# "-" is a value (standard input), so only another flag counts as a missing value.
			case "${2-}" in
			"" | --url | --token | --token-file | --ca-fingerprint | --enroll-endpoint | --force | --help | -h)
				usage_error "${flag} needs a value"
				;;
			esac
			value="$2"
			shift 2
			;;
		*)
			usage_error "unknown argument: ${flag}"
			;;
		esac
		case "${flag}" in
		--url) URL="${value}" ;;
		--token-file) TOKEN_FILE="${value}" ;;
		--ca-fingerprint) FINGERPRINT="${value}" ;;
		--enroll-endpoint) ENROLL_ENDPOINT="${value}" ;;
		esac
	done

	[ -n "${URL}" ] || usage_error "--url is required"
	[ -n "${TOKEN_FILE}" ] || usage_error "--token-file is required (- for standard input)"
	[ -n "${FINGERPRINT}" ] || usage_error "--ca-fingerprint is required"
	read_token

	# Only characters that need no quoting anywhere they go (systemd EnvironmentFile included).
	local host_re='(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)'
	if ! [[ "${URL}" =~ ^(https?)://${host_re}(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]]; then
		usage_error "--url must be an http(s) URL such as https://gpulab.example.org, got '${URL}'"
	fi
	URL="${URL%/}"
	local host
	host="$(url_host "${URL}")"
	if [[ "${URL}" == http://* ]]; then
		case "${host}" in
		localhost | 127.0.0.1 | "[::1]") ;;
		*) usage_error "--url ${URL} is plain http: only localhost may be reached without TLS; use the https:// public URL" ;;
		esac
	fi

	if ! [[ "${TOKEN}" =~ ^[A-Za-z0-9_-]{20,256}$ ]]; then
		usage_error "the token (--token-file) must be 20 to 256 characters of A-Z, a-z, 0-9, '_' and '-' (copy it from the control plane)"
	fi

	local fp="${FINGERPRINT//:/}"
	fp="${fp,,}"
	if ! [[ "${fp}" =~ ^[0-9a-f]{64}$ ]]; then
		usage_error "--ca-fingerprint must be a SHA-256 of 64 hex digits (colons allowed), got '${FINGERPRINT}'"
	fi
	FINGERPRINT="${fp}"

	if [ -z "${ENROLL_ENDPOINT}" ]; then
		ENROLL_ENDPOINT="${host}:${DEFAULT_ENROLL_PORT}"
	fi
	if ! [[ "${ENROLL_ENDPOINT}" =~ ^${host_re}:([0-9]{1,5})$ ]] || [ "${BASH_REMATCH[3]}" -lt 1 ] ||
		[ "${BASH_REMATCH[3]}" -gt 65535 ]; then
		usage_error "--enroll-endpoint must be HOST:PORT with a port from 1 to 65535, got '${ENROLL_ENDPOINT}'"
	fi
}

# read_token sets TOKEN from the first line of --token-file's file, or of standard input for "-".
# At most TOKEN_READ_MAX characters are read: a token is 43 (pki refuses any over 256), and the check
# after this refuses anything else.
readonly TOKEN_READ_MAX=512
read_token() {
	if [ "${TOKEN_FILE}" = "-" ]; then
		if [ -t 0 ]; then
			printf 'Enrollment token: ' >&2
			IFS= read -r -s -n "${TOKEN_READ_MAX}" TOKEN || true
			printf '\n' >&2
		else
			IFS= read -r -n "${TOKEN_READ_MAX}" TOKEN || true
		fi
	else
		[ -f "${TOKEN_FILE}" ] && [ -r "${TOKEN_FILE}" ] ||
			usage_error "--token-file ${TOKEN_FILE} is not a readable file"
		IFS= read -r -n "${TOKEN_READ_MAX}" TOKEN <"${TOKEN_FILE}" || true
	fi
	TOKEN="${TOKEN%$'\r'}"
	[ -n "${TOKEN}" ] || usage_error "no enrollment token: the first line of --token-file ${TOKEN_FILE} is empty"
}

check_host() {
	if [ -z "${ROOT}" ]; then
		[ "${EUID}" -eq 0 ] || die "run this as root (the install command pipes it to 'sudo bash')"
	elif [[ "${ROOT}" != /* ]] || [ ! -d "${ROOT}" ]; then
		die "GPULAB_INSTALL_ROOT must be an existing absolute directory, got '${ROOT}'"
	fi
	local kernel machine
	kernel="$(uname -s)"
	machine="$(uname -m)"
	[ "${kernel}" = "Linux" ] || die "the agent runs on Linux only, this is ${kernel}"
	[ "${machine}" = "x86_64" ] || die "the agent is built for x86_64 only, this machine is ${machine}"
	local tool
	for tool in curl sha256sum install mktemp "${SYSTEMCTL}"; do
		command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is required but was not found"
	done
	# sd_booted(3): systemd is running when this directory exists (not in most containers).
	if [ -z "${ROOT}" ] && [ ! -d /run/systemd/system ]; then
		die "systemd is not running on this host; the agent runs as a systemd service"
	fi
	if [ -e "${CONFIG_DIR}/node.pem" ] && [ "${FORCE}" -ne 1 ]; then
		die "this node is already enrolled (${CONFIG_DIR}/node.pem exists); to enroll it again, which replaces its identity, add --force"
	fi
}

download() {
	local proto="=https"
	# Plain http only ever reaches localhost (checked above); https never follows a redirect to http.
	[[ "${URL}" == http://* ]] && proto="=http,https"
	curl -fsSL --proto "${proto}" --retry 3 --connect-timeout 15 --max-time 600 \
		-o "$2" "${URL}/downloads/$1" </dev/null ||
		die "could not download ${URL}/downloads/$1 (see curl's message above)"
}

fetch_and_verify() {
	say "downloading the agent from ${URL}/downloads/${ARTIFACT}"
	download "${ARTIFACT}" "${WORK_DIR}/gpulab-agent"
	download "${ARTIFACT}.sha256" "${WORK_DIR}/gpulab-agent.sha256"

	# This guards against a truncated or corrupted download; the authenticity of both files rests on
	# the https connection to the control plane.
	say "verifying its SHA-256"
	local expected actual
	expected="$(head -c 64 "${WORK_DIR}/gpulab-agent.sha256")"
	[[ "${expected}" =~ ^[0-9a-f]{64}$ ]] || die "${URL}/downloads/${ARTIFACT}.sha256 is not a SHA-256 sum file"
	actual="$(sha256sum "${WORK_DIR}/gpulab-agent")"
	actual="${actual%% *}"
	if [ "${actual}" != "${expected}" ]; then
		die "SHA-256 mismatch for the downloaded agent: expected ${expected}, got ${actual}; nothing was installed"
	fi

	say "checking that the agent runs"
	chmod 0755 "${WORK_DIR}/gpulab-agent"
	local version
	version="$("${WORK_DIR}/gpulab-agent" version </dev/null)" ||
		die "the downloaded agent does not run here (is ${WORK_DIR%/*} mounted noexec? then set TMPDIR to another folder)"
	say "got ${version}"
}

enroll() {
	say "enrolling this node at ${ENROLL_ENDPOINT}"
	local staging="${WORK_DIR}/gpulab"
	mkdir -m 0700 "${staging}"
	"${WORK_DIR}/gpulab-agent" enroll \
		--server "${ENROLL_ENDPOINT}" --ca-sha256 "${FINGERPRINT}" --dir "${staging}" --token-file - <<<"${TOKEN}" ||
		die "enrollment failed (see the agent's message above); nothing was installed"
	local name
	for name in node.key node.pem ca.pem agent.json; do
		[ -s "${staging}/${name}" ] || die "enrollment did not write ${name}; nothing was installed"
	done
}

write_config() {
	cat >"${WORK_DIR}/gpulab/agent.env" <<ENV
# Written by install-agent.sh; read by ${SERVICE}.service (EnvironmentFile).
GPULAB_URL=${URL}
GPULAB_ENROLL_ENDPOINT=${ENROLL_ENDPOINT}
GPULAB_CA_FINGERPRINT=${FINGERPRINT}
# Optional (gpulab-agent run --help): GPULAB_ON_REVOKE=lock|remove, GPULAB_CONTAINER_SOCKET,
# GPULAB_CONTAINER_IMAGE, GPULAB_PROXMOX_CONFIG (default /etc/gpulab/proxmox.json, used when present).
ENV
	# Hardening is modest on purpose: the agent must create Linux users and write their home
	# directories, /etc/passwd, cgroups, GPU device files and containers, so ProtectSystem,
	# ProtectHome, ProtectControlGroups, PrivateDevices and capability limits would break it.
	# NoNewPrivileges is left out too: on SELinux hosts it blocks the domain transitions of the
	# tools the agent runs (useradd, ...). What is left takes nothing away from the agent's work.
	# RestartPreventExitStatus=78: `run` exits 78 when only a new enrollment can help.
	cat >"${WORK_DIR}/${SERVICE}.service" <<UNIT
[Unit]
Description=gpulab agent (node enrollment, heartbeats, GPU assignments)
Documentation=${URL}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
EnvironmentFile=/etc/gpulab/agent.env
ExecStart=/usr/local/bin/gpulab-agent run --dir /etc/gpulab
Restart=always
RestartSec=5
RestartPreventExitStatus=78
# /var/lib/gpulab: the mig and container modes' state (root only).
StateDirectory=gpulab
StateDirectoryMode=0700
PrivateTmp=yes
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=multi-user.target
UNIT
}

# ensure_dir DIR MODE: creates DIR (MODE) and any missing parent (0755), remembering each.
ensure_dir() {
	[ -d "$1" ] && return 0
	ensure_dir "$(dirname "$1")" 0755
	mkdir -m "$2" "$1"
	CREATED_DIRS+=("$1")
}

# put SOURCE TARGET MODE: installs a file or a folder at TARGET; each lands with one rename and
# the previous version, if any, is kept until the whole install has succeeded.
put() {
	local source="$1" target="$2" mode="$3"
	local new="${target}.gpulab-new.$$" backup=""
	ensure_dir "$(dirname "${target}")" 0755
	LEFTOVERS+=("${new}")
	if [ -d "${source}" ]; then
		cp -R "${source}" "${new}"
		chmod -R go-rwx "${new}"
		chmod "${mode}" "${new}"
	else
		install -m "${mode}" "${source}" "${new}"
	fi
	if [ -e "${target}" ] || [ -L "${target}" ]; then
		backup="${target}.gpulab-old.$$"
		if [ ! -d "${source}" ] && [ -d "${target}" ]; then
			die "${target} is a directory; remove it first"
		fi
	fi
	if [ -n "${backup}" ] && [ ! -d "${source}" ]; then
		# A copy, complete before it takes the backup's name: the rollback never restores half a file.
		LEFTOVERS+=("${backup}.part")
		cp -a "${target}" "${backup}.part"
		mv -f "${backup}.part" "${backup}"
	fi
	# Recorded before the first change to the target, so that a failure from here on is undone.
	JOURNAL_TARGETS+=("${target}")
	JOURNAL_BACKUPS+=("${backup}")
	if [ -d "${source}" ]; then
		# A folder cannot replace another in one rename: move the old one aside first.
		[ -z "${backup}" ] || mv "${target}" "${backup}"
		mv "${new}" "${target}"
	else
		mv -f "${new}" "${target}"
	fi
}

install_all() {
	INSTALLING=1
	if [ -e "${UNIT_PATH}" ]; then
		if "${SYSTEMCTL}" is-enabled --quiet "${SERVICE}" </dev/null; then
			WAS_ENABLED=1
		fi
		if "${SYSTEMCTL}" is-active --quiet "${SERVICE}" </dev/null; then
			WAS_ACTIVE=1
			say "stopping the running agent"
			SERVICE_TOUCHED=1
			"${SYSTEMCTL}" stop "${SERVICE}" </dev/null || die "could not stop ${SERVICE}"
		fi
	fi
	say "installing ${BIN_PATH#"${ROOT}"}"
	put "${WORK_DIR}/gpulab-agent" "${BIN_PATH}" 0755
	say "installing the node's identity and ${ENV_PATH#"${ROOT}"} in ${CONFIG_DIR#"${ROOT}"}"
	put "${WORK_DIR}/gpulab" "${CONFIG_DIR}" 0700
	say "installing ${UNIT_PATH#"${ROOT}"}"
	put "${WORK_DIR}/${SERVICE}.service" "${UNIT_PATH}" 0644

	say "starting ${SERVICE}"
	SERVICE_TOUCHED=1
	"${SYSTEMCTL}" daemon-reload </dev/null || die "systemctl daemon-reload failed"
	"${SYSTEMCTL}" enable --now "${SERVICE}" </dev/null ||
		die "could not enable and start ${SERVICE} (see: journalctl -u ${SERVICE})"
	COMMITTED=1

	local i
	for ((i = 0; i < ${#JOURNAL_BACKUPS[@]}; i++)); do
		[ -z "${JOURNAL_BACKUPS[i]}" ] || rm -rf -- "${JOURNAL_BACKUPS[i]}"
	done
}

rollback() {
	say "rolling back: restoring what this run changed"
	if [ "${SERVICE_TOUCHED}" -eq 1 ] && [ "${WAS_ENABLED}" -eq 0 ]; then
		"${SYSTEMCTL}" disable --now "${SERVICE}" </dev/null >/dev/null 2>&1 || true
	fi
	local i
	for ((i = ${#LEFTOVERS[@]} - 1; i >= 0; i--)); do
		rm -rf -- "${LEFTOVERS[i]}" || ROLLBACK_FAILED=1
	done
	for ((i = ${#JOURNAL_TARGETS[@]} - 1; i >= 0; i--)); do
		local target="${JOURNAL_TARGETS[i]}" backup="${JOURNAL_BACKUPS[i]}"
		if [ -z "${backup}" ]; then
			rm -rf -- "${target}" || ROLLBACK_FAILED=1
		elif [ -e "${backup}" ] || [ -L "${backup}" ]; then
			if [ -d "${backup}" ] && [ ! -L "${backup}" ]; then
				rm -rf -- "${target}"
			fi
			mv -f "${backup}" "${target}" || {
				ROLLBACK_FAILED=1
				printf '%s: error: could not restore %s from %s\n' "${PROG}" "${target}" "${backup}" >&2
			}
		fi
	done
	for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do
		rmdir -- "${CREATED_DIRS[i]}" 2>/dev/null || true
	done
	if [ "${SERVICE_TOUCHED}" -eq 1 ]; then
		"${SYSTEMCTL}" daemon-reload </dev/null >/dev/null 2>&1 || true
		if [ "${WAS_ACTIVE}" -eq 1 ]; then
			"${SYSTEMCTL}" restart "${SERVICE}" </dev/null >/dev/null 2>&1 || true
		fi
	fi
}

on_exit() {
	local status=$?
	trap - EXIT
	if [ "${status}" -ne 0 ] && [ "${INSTALLING}" -eq 1 ] && [ "${COMMITTED}" -eq 0 ]; then
		set +e
		rollback
	fi
	[ -z "${WORK_DIR}" ] || rm -rf -- "${WORK_DIR}"
	if [ "${ROLLBACK_FAILED}" -eq 1 ]; then
		printf '%s: failed, and the rollback was incomplete: check the files named above\n' "${PROG}" >&2
	elif [ "${status}" -ne 0 ]; then
		printf '%s: failed; this node was left as it was\n' "${PROG}" >&2
	fi
	exit "${status}"
}

main() {
	parse_args "$@"
	check_host
	trap on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gpulab-install.XXXXXXXX")"
	fetch_and_verify
	enroll
	write_config
	install_all
	say "done: ${SERVICE} is enrolled and running (logs: journalctl -u ${SERVICE} -f)"
}

# Everything above only defines functions: bash, reading this from a pipe, runs nothing until it
# has the whole file, so a download cut short runs nothing at all.
main "$@"
