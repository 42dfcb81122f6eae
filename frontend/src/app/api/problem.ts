import { HttpErrorResponse } from '@angular/common/http';

import type { Problem } from './generated/schema';

// The gateway's errors are `application/problem+json` (RFC 9457): `code` is the stable word to branch
// on, `detail` a sentence meant for a person (shared/API.md, "Conventions"). This file turns them into
// what the pages show.

/** True when `body` looks like a problem: a proxy in front of the gateway may send HTML instead. */
export function isProblem(body: unknown): body is Problem {
  if (typeof body !== 'object' || body === null) {
    return false;
  }
  const { title, status } = body as Partial<Problem>;
  return typeof title === 'string' && typeof status === 'number';
}

/** The problem carried by a failed request, or null when the body is not one. */
export function problemOf(err: unknown): Problem | null {
  return err instanceof HttpErrorResponse && isProblem(err.error) ? err.error : null;
}

/** The problem's `code`, or null. */
export function codeOf(err: unknown): string | null {
  return problemOf(err)?.code ?? null;
}

/** The HTTP status of a failed request; 0 when the gateway could not be reached at all. */
export function statusOf(err: unknown): number | null {
  return err instanceof HttpErrorResponse ? err.status : null;
}

/** Seconds the server asked to wait (`Retry-After`, or the problem's `retry_after_s`), or null. */
export function retryAfterSeconds(err: unknown): number | null {
  if (!(err instanceof HttpErrorResponse)) {
    return null;
  }
  const header = Number(err.headers?.get('Retry-After'));
  if (Number.isFinite(header) && header > 0) {
    return Math.ceil(header);
  }
  const fromBody = problemOf(err)?.retry_after_s;
  return typeof fromBody === 'number' && fromBody > 0 ? Math.ceil(fromBody) : null;
}

/** "45 seconds", "1 minute", "3 minutes": how long a person has to wait. */
export function formatWait(seconds: number): string {
  if (seconds < 60) {
    return `${seconds} second${seconds === 1 ? '' : 's'}`;
  }
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/**
 * Codes whose words the web app chooses itself, because the server's detail is written for an API
 * client (or, for `invalid_credentials`, deliberately says nothing about which part was wrong).
 * Every other code shows the server's own detail.
 */
const WORDS: Record<string, (err: HttpErrorResponse) => string> = {
  invalid_credentials: () => 'Wrong email or password.',
  too_many_attempts: (err) => {
    const wait = retryAfterSeconds(err);
    return wait === null
      ? 'Too many attempts. Wait a while and try again.'
      : `Too many attempts. Try again in ${formatWait(wait)}.`;
  },
  unauthenticated: () => 'Your session has ended. Sign in again.',
  csrf_failed: () => 'Your session lost its security token. Reload the page and try again.',
  forbidden: () => 'Only admins may do that.',
  last_admin: () =>
    'This is the last active admin. Make someone else an admin first, so that gpulab can still be managed.',
  request_too_large: () => 'That is too large to send.',
  service_unavailable: (err) =>
    `A gpulab service did not answer${detailSuffix(err)}. Try again in a moment.`,
};

function detailSuffix(err: HttpErrorResponse): string {
  const detail = problemOf(err)
    ?.detail?.trim()
    .replace(/[.!?]$/, '');
  return detail ? ` (${detail})` : '';
}

/** One sentence saying why a request failed, in words a person can act on. */
export function describeHttpError(err: unknown): string {
  if (!(err instanceof HttpErrorResponse)) {
    return 'Something went wrong.';
  }
  if (err.status === 0) {
    return 'The gateway could not be reached.';
  }
  const problem = problemOf(err);
  const words = problem?.code ? WORDS[problem.code] : undefined;
  if (words) {
    return words(err);
  }
  const detail = problem?.detail;
  if (detail?.trim()) {
    return asSentence(detail);
  }
  return `The gateway answered ${err.status}${err.statusText ? ` ${err.statusText}` : ''}.`;
}

/**
 * A problem `detail` made ready to show on its own: the gateway writes lower-case fragments meant to
 * follow a colon ("the password must have at least 12 characters").
 */
export function asSentence(detail: string): string {
  const text = detail.trim();
  if (!text) {
    return text;
  }
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}`;
}
