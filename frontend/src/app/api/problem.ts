import { HttpErrorResponse } from '@angular/common/http';

/**
 * An `application/problem+json` error body (RFC 9457) as the gateway sends it: `code` is the stable
 * snake_case word to branch on, `detail` is a sentence meant for a person (docs: shared/API.md,
 * "Conventions").
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code?: string;
}

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

/** The HTTP status of a failed request; 0 when the gateway could not be reached at all. */
export function statusOf(err: unknown): number | null {
  return err instanceof HttpErrorResponse ? err.status : null;
}

/** One sentence saying why a request failed, for an error message that offers "Try again". */
export function describeHttpError(err: unknown): string {
  if (!(err instanceof HttpErrorResponse)) {
    return 'Something went wrong.';
  }
  if (err.status === 0) {
    return 'The gateway could not be reached.';
  }
  const detail = problemOf(err)?.detail;
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
