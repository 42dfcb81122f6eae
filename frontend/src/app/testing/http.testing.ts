import { HttpTestingController, TestRequest } from '@angular/common/http/testing';

import type { User } from '../api';

// Shared by the specs: people to sign in as, and a way to answer requests that a guard or a poll
// makes a moment after the test acts.

export const ADMIN: User = {
  id: '0f9a3c1e-1111-4a57-9d5e-3f1b9a1c2d4e',
  email: 'grace@lab.org',
  name: 'Grace Hopper',
  role: 'admin',
  status: 'active',
  has_ssh_key: true,
  created_at: '2030-01-01T00:00:00Z',
  invite_delivery: null,
};

export const USER: User = {
  id: '8d3c6a8e-2222-4a57-9d5e-3f1b9a1c2d4e',
  email: 'ada@lab.org',
  name: 'Ada Lovelace',
  role: 'user',
  status: 'active',
  has_ssh_key: false,
  created_at: '2030-01-01T00:00:00Z',
  invite_delivery: null,
};

export function problem(status: number, code: string, detail = 'details') {
  return { type: `urn:gpulab:problem:${code}`, title: 'Problem', status, detail, code };
}

type Match = Parameters<HttpTestingController['match']>[0];

/** The next request that matches, waiting up to 5 s (a loaded CI machine) for the app to make it. */
export async function nextRequest(http: HttpTestingController, match: Match): Promise<TestRequest> {
  for (let i = 0; i < 500; i++) {
    const found = http.match(match);
    if (found.length > 0) {
      return found[0];
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no request matched ${JSON.stringify(match)}`);
}

/** Answers the app's `GET /auth/me`: with the user (and a CSRF token), or 401 for nobody. */
export async function answerMe(http: HttpTestingController, user: User | null): Promise<void> {
  const req = await nextRequest(http, { method: 'GET', url: '/api/v1/auth/me' });
  if (user) {
    req.flush(user, { headers: { 'X-CSRF-Token': 'csrf-1' } });
  } else {
    req.flush(problem(401, 'unauthenticated'), { status: 401, statusText: 'Unauthorized' });
  }
}
