import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { Api } from './client';
import type { AcceptInvite, InviteInfo, User } from './generated/schema';

/** Problem `code`s of a 410 from either invite call. */
export const INVITE_EXPIRED = 'invite_expired';
export const INVITE_USED = 'invite_used';
/** Problem `code` of a 422 from accept: the password breaks the rules; `detail` says which. */
export const INVALID_PASSWORD = 'invalid_password';

@Injectable({ providedIn: 'root' })
export class InvitesApi {
  private readonly api = inject(Api);

  /** What the invite is for. 404: no such token; 410 `invite_expired` or `invite_used`. */
  lookup(token: string): Observable<InviteInfo> {
    return this.api.get('/api/v1/auth/invites/{token}', { path: { token } });
  }

  /** Sets the new user's name and password; 201 with the now active `User`. */
  accept(token: string, body: AcceptInvite): Observable<User> {
    // Only these two fields: the gateway refuses unknown ones.
    const { name, password } = body;
    return this.api.post('/api/v1/auth/invites/{token}/accept', {
      path: { token },
      body: { name, password },
    });
  }
}
