import type { RequestStatus } from '../../api';

const WORDS: Record<RequestStatus, string> = {
  pending_approval: 'pending approval',
  queued: 'queued',
  granted: 'granted',
  denied: 'denied',
  cancelled: 'cancelled',
};

/** A request's status as the pages show it. */
export function statusWord(status: RequestStatus): string {
  return WORDS[status] ?? status;
}
