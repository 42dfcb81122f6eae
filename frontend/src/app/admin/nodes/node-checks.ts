// The checks the Add node form makes before it asks the server, the same rules inventory applies
// (libs/gpulab-core/src/gpulab_core/contracts/inventory.py, NewNode): the server stays the judge,
// these only spare a round trip and say what is wrong while the person types.

// RFC 1123: labels of letters, digits and inner hyphens, at most 63 each, 253 characters in all.
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
export const HOSTNAME_MAX = 253;

/** Why `value` is not a host name, or null when it is one. */
export function hostnameError(value: string): string | null {
  const name = value.trim();
  if (!name) {
    return 'Enter the host name.';
  }
  if (name.length > HOSTNAME_MAX) {
    return `Use at most ${HOSTNAME_MAX} characters; this has ${name.length}.`;
  }
  const labels = name.split('.');
  if (labels.some((label) => label.length > 63)) {
    return 'Each part between dots may have at most 63 characters.';
  }
  if (!labels.every((label) => LABEL.test(label))) {
    return 'Use letters, digits, hyphens and dots only, with no hyphen or dot at either end of a part (RFC 1123).';
  }
  return null;
}

/** True for a dotted-quad IPv4 address as Python's ipaddress reads it (no leading zeros). */
export function isIPv4(value: string): boolean {
  const parts = value.split('.');
  return (
    parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)
  );
}

/** True for an IPv6 address (`::` once at most, an IPv4 tail allowed); zones (`%eth0`) are not. */
export function isIPv6(value: string): boolean {
  if (!value.includes(':') || value.split('::').length > 2) {
    return false;
  }
  // An IPv4 tail stands for the last two groups (::ffff:192.0.2.1).
  const lastColon = value.lastIndexOf(':');
  const tail = value.slice(lastColon + 1);
  if (tail.includes('.') && !isIPv4(tail)) {
    return false;
  }
  const text = tail.includes('.') ? `${value.slice(0, lastColon + 1)}0:0` : value;
  const hex = /^[0-9A-Fa-f]{1,4}$/;
  if (text.includes('::')) {
    const [head, rest] = text.split('::');
    const left = head ? head.split(':') : [];
    const right = rest ? rest.split(':') : [];
    return left.length + right.length < 8 && [...left, ...right].every((g) => hex.test(g));
  }
  const all = text.split(':');
  return all.length === 8 && all.every((g) => hex.test(g));
}

/** Why `value` is not an IP address, or null when it is an IPv4 or IPv6 address. */
// The port of the node's sshd: TCP's 1-65535 (NewNode.ssh_port), 22 unless the admin moved it.
export const SSH_PORT_MAX = 65535;

/** Why `value` is not a TCP port, or null when it is one. */
export function portError(value: string): string | null {
  const port = value.trim();
  if (!port) {
    return "Enter the port of the node's sshd (22 unless it was moved).";
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > SSH_PORT_MAX) {
    return `Use a port from 1 to ${SSH_PORT_MAX}.`;
  }
  return null;
}

export function ipError(value: string): string | null {
  const ip = value.trim();
  if (!ip) {
    return 'Enter the management IP address.';
  }
  if (ip.includes('%')) {
    return 'Give the address without a zone (the part from "%").';
  }
  return isIPv4(ip) || isIPv6(ip)
    ? null
    : 'Enter an IPv4 address (192.0.2.10) or an IPv6 address (2001:db8::10).';
}
