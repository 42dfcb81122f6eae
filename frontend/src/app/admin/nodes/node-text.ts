import type { Assignment, Node, User } from '../../api';
import { formatAgo } from '../../shared/format';
import { activeOn, userLabel } from './gpu-map';

// What the nodes page says about a node, in words.

export const STATUS_WORDS: Record<Node['status'], string> = {
  pending: 'Waiting for the agent',
  online: 'Online',
  offline: 'Offline',
  revoked: 'Deleted',
};

export const TYPE_WORDS: Record<Node['type'], { label: string; sentence: string }> = {
  linux: {
    label: 'linux',
    sentence:
      'A Linux machine with GPUs: the agent runs on it and sets up users and GPU access there.',
  },
  proxmox: {
    label: 'proxmox',
    sentence:
      'A Proxmox VE host: the agent runs on the host and uses the Proxmox API for containers and users.',
  },
  jump: {
    label: 'jump',
    sentence:
      'The SSH jump host users connect through: the agent keeps one forwarding-only account per user, limited to the nodes they hold.',
  },
};

/** "Last seen 12 s ago", "Never seen", "Last seen 2030-01-01". */
export function lastSeen(node: Pick<Node, 'last_seen_at'>, now: number): string {
  if (!node.last_seen_at) {
    return 'Never seen';
  }
  return `Last seen ${formatAgo(node.last_seen_at, now)}`;
}

/** What deleting the node ends, for its confirmation: one paragraph, to be read as one. */
export function deleteMessage(
  node: Pick<Node, 'id'>,
  assignments: readonly Assignment[] | undefined,
  users: readonly User[] | undefined,
): string {
  const revoked = "The node's certificate is revoked; the agent must enroll again to come back.";
  if (!assignments) {
    return `It ends every active assignment on it (the page could not load them to name them). ${revoked}`;
  }
  const active = activeOn(node.id, assignments);
  const who = [...new Set(active.map((a) => userLabel(a.user_id, users)))];
  const ends =
    active.length === 0
      ? 'No active assignment runs on it.'
      : `This ends ${active.length} active assignment${active.length === 1 ? '' : 's'}: ${who.join(', ')}.`;
  return `${ends} ${revoked}`;
}
