import { HttpErrorResponse } from '@angular/common/http';

import { asSentence, describeHttpError, isProblem, problemOf, statusOf } from './problem';

const GONE = { type: 'about:blank', title: 'Gone', status: 410, detail: 'x', code: 'invite_used' };

describe('problems', () => {
  it('recognises a problem body and nothing else', () => {
    expect(isProblem(GONE)).toBe(true);
    expect(isProblem({ title: 'Gone' })).toBe(false);
    expect(isProblem('<html>')).toBe(false);
    expect(isProblem(null)).toBe(false);
  });

  it('reads the problem and the status off a failed request', () => {
    const err = new HttpErrorResponse({ status: 410, error: GONE });
    expect(problemOf(err)?.code).toBe('invite_used');
    expect(statusOf(err)).toBe(410);
    expect(problemOf(new HttpErrorResponse({ status: 502, error: 'bad gateway' }))).toBeNull();
    expect(statusOf(new Error('boom'))).toBeNull();
  });

  it('describes a failure in one sentence', () => {
    expect(describeHttpError(new HttpErrorResponse({ status: 0 }))).toBe(
      'The gateway could not be reached.',
    );
    expect(
      describeHttpError(
        new HttpErrorResponse({ status: 503, error: { ...GONE, detail: 'identity is down' } }),
      ),
    ).toBe('Identity is down.');
    expect(
      describeHttpError(new HttpErrorResponse({ status: 502, statusText: 'Bad Gateway' })),
    ).toBe('The gateway answered 502 Bad Gateway.');
  });

  it('turns a detail into a sentence', () => {
    expect(asSentence('the password is too short')).toBe('The password is too short.');
    expect(asSentence('Already one.')).toBe('Already one.');
    expect(asSentence('  ')).toBe('');
  });
});
