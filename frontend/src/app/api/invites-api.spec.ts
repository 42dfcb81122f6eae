import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import type { InviteInfo } from './generated/schema';
import { InvitesApi } from './invites-api';
import type { User } from './generated/schema';

describe('InvitesApi', () => {
  let api: InvitesApi;
  let httpTesting: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    api = TestBed.inject(InvitesApi);
    httpTesting = TestBed.inject(HttpTestingController);
  });

  afterEach(() => httpTesting.verify());

  it('looks an invite up by its token, encoded as one path segment', () => {
    const reply: InviteInfo = { email: 'ada@example.org', expires_at: '2030-01-01T00:00:00Z' };
    let received: InviteInfo | undefined;

    api.lookup('a/b=').subscribe((r) => (received = r));
    httpTesting.expectOne({ method: 'GET', url: '/api/v1/auth/invites/a%2Fb%3D' }).flush(reply);

    expect(received).toEqual(reply);
  });

  it('accepts with exactly the name and the password', () => {
    const user = { id: 'u1', name: 'Ada' } as User;
    let received: User | undefined;
    const body = { name: 'Ada', password: 'a'.repeat(12), extra: 'dropped' };

    api.accept('tok', body).subscribe((r) => (received = r));
    const req = httpTesting.expectOne({ method: 'POST', url: '/api/v1/auth/invites/tok/accept' });
    expect(req.request.body).toEqual({ name: 'Ada', password: 'a'.repeat(12) });
    req.flush(user, { status: 201, statusText: 'Created' });

    expect(received).toEqual(user);
  });
});
