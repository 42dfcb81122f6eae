import type { Assignment, Environment, NewAssignment, Node, User } from '../../api';
import { codeOf, describeHttpError, problemOf } from '../../api';
import { formatMb } from '../../shared/format';
import { describeWithFields } from '../users/user-view';

// The assignments page's words and request bodies, as pure functions (assignments.spec.ts).

/** The filter "Filter by status"; `all` sends no status (the server then lists every one). */
export type StatusFilter = 'active' | 'revoked' | 'expired' | 'all';

export interface AssignmentFilters {
  userId: string;
  environmentId: string;
  nodeId: string;
  status: StatusFilter;
}

/** The query of `GET /assignments` for these filters; an empty choice means "all". */
export function assignmentsQuery(filters: AssignmentFilters, limit: number) {
  return {
    limit,
    user_id: filters.userId || undefined,
    environment_id: filters.environmentId || undefined,
    node_id: filters.nodeId || undefined,
    status: filters.status === 'all' ? undefined : filters.status,
  };
}

/** What the create form holds, before it becomes a request. */
export interface AssignmentDraft {
  userId: string;
  environmentId: string;
  gpus: number;
  cpus: number;
  ramMb: number;
  /** Empty: no `expires_at`, so the server applies the Environment's default expiry (if any). */
  hours: number | null;
  placement: 'dynamic' | 'fixed';
  nodeId: string | null;
}

/**
 * The body of `POST /assignments` (shared/API.md): `node_id` only for `fixed` (the server refuses
 * it for `dynamic`), `expires_at` only when hours are given, as RFC 3339 UTC.
 */
export function assignmentBody(draft: AssignmentDraft, now = Date.now()): NewAssignment {
  const body: NewAssignment = {
    user_id: draft.userId,
    environment_id: draft.environmentId,
    gpus: draft.gpus,
    cpus: draft.cpus,
    ram_mb: draft.ramMb,
    placement: draft.placement,
  };
  if (draft.placement === 'fixed' && draft.nodeId) {
    body.node_id = draft.nodeId;
  }
  if (draft.hours !== null) {
    body.expires_at = expiresAt(draft.hours, now);
  }
  return body;
}

/** now + hours as RFC 3339 UTC, to the second: "2030-01-01T12:00:00Z". */
export function expiresAt(hours: number, now = Date.now()): string {
  return new Date(now + Math.round(hours * 3_600_000)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Why the server refused to create an assignment, in words. */
export function createError(err: unknown, userEmail: string): string {
  switch (codeOf(err)) {
    case 'no_capacity': {
      const detail = problemOf(err)?.detail?.trim().replace(/[.]$/, '');
      return (
        `gpulab found no place for this assignment${detail ? ` (${detail})` : ''}. ` +
        'Ask for fewer GPUs, CPUs or RAM, pick another node or Environment, or revoke an assignment first.'
      );
    }
    case 'user_has_no_ssh_key':
      return `${userEmail} has no SSH key yet, so they cannot get GPUs: they add one on their SSH keys page first.`;
    default:
      return describeWithFields(err);
  }
}

/** Why the server refused a revocation, in words. */
export function revokeError(err: unknown): string {
  if (codeOf(err) === 'assignment_not_active') {
    const detail = problemOf(err)?.detail?.trim().replace(/[.]$/, '');
    return `This assignment has already ended, so there is nothing to revoke${detail ? ` (${detail})` : ''}.`;
  }
  return describeHttpError(err);
}

/** What the node's agent last reported for an assignment (`node_state`, `node_message`). */
export function nodeStateOf(assignment: Assignment): { text: string; failed: boolean } {
  const { node_state: state, node_message: message } = assignment;
  const why = message?.trim() ? `: ${message.trim()}` : '';
  return { text: `${state}${why}`, failed: state === 'failed' };
}

export interface Lookups {
  users: ReadonlyMap<string, User>;
  environments: ReadonlyMap<string, Environment>;
  nodes: ReadonlyMap<string, Node>;
}

export function byId<T extends { id: string }>(items: readonly T[] | undefined): Map<string, T> {
  return new Map((items ?? []).map((item) => [item.id, item]));
}

/** An id the lookups do not know (yet): short, and says what it is. */
function unknown(what: string, id: string): string {
  return `${what} ${id.slice(0, 8)}`;
}

/** One row of the list, with every id turned into a name. */
export function assignmentRow(a: Assignment, names: Lookups) {
  return {
    a,
    user: names.users.get(a.user_id)?.email ?? unknown('user', a.user_id),
    environment:
      names.environments.get(a.environment_id)?.name ?? unknown('Environment', a.environment_id),
    node: names.nodes.get(a.node_id)?.hostname ?? unknown('node', a.node_id),
    gpus: a.gpus.length ? a.gpus.map((gpu) => gpu.index).join(', ') : '—',
    cpus: a.cpus === 0 ? 'no limit' : String(a.cpus),
    ram: formatMb(a.ram_mb),
    nodeState: nodeStateOf(a),
  };
}

export type AssignmentRow = ReturnType<typeof assignmentRow>;
