import type { FieldError, InviteDelivery, User } from '../../api';
import { codeOf, describeHttpError, problemOf } from '../../api';
import { formatAgo } from '../../shared/format';

// What the users page shows for a user, as pure functions (unit-tested in users.spec.ts).

/** The filter "Show": every status, or one of them (the server filters: `GET /users?status=`). */
export type ShowFilter = 'all' | User['status'];

/** The name a person set when accepting; nobody has one before that. */
export function nameText(user: User): string {
  return user.name?.trim() || '—';
}

export function keyText(user: User): string {
  return user.has_ssh_key ? 'has a key' : 'no key yet';
}

/**
 * Where an invited user's invite email stands, in words (null for anyone not invited, or an invite
 * the server says nothing about). `failed` must stand out: the page marks it, and the word says it.
 */
export function deliveryText(
  user: User,
  now = Date.now(),
): { text: string; failed: boolean } | null {
  const delivery: InviteDelivery | null | undefined = user.invite_delivery;
  if (user.status !== 'invited' || !delivery) {
    return null;
  }
  const detail = delivery.detail?.trim() || 'no reason given';
  switch (delivery.state) {
    case 'pending':
      return { text: 'queued', failed: false };
    case 'sent':
      return { text: `sent ${formatAgo(delivery.updated_at, now)}`, failed: false };
    case 'retrying':
      return { text: `retrying: ${detail}`, failed: false };
    case 'failed':
      return { text: `failed: ${detail}`, failed: true };
  }
}

/**
 * describeHttpError, plus what the gateway's `invalid_request` says is wrong where (its `errors`):
 * its detail alone ("The request is not valid.") does not tell a person what to fix.
 */
export function describeWithFields(err: unknown): string {
  const sentence = describeHttpError(err);
  const errors: FieldError[] = problemOf(err)?.errors ?? [];
  if (codeOf(err) !== 'invalid_request' || errors.length === 0) {
    return sentence;
  }
  const parts = errors.map((e) => {
    const field = [...e.loc].reverse().find((part) => typeof part === 'string' && part !== 'body');
    return field ? `${field}: ${e.msg}` : e.msg;
  });
  return `${sentence.replace(/\.$/, '')} (${parts.join('; ')}).`;
}
