import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';
import { User } from './user';

// Hand-written until the OpenAPI client is generated; the shapes follow `GET /auth/invites/{token}`
// and `POST /auth/invites/{token}/accept` in shared/API.md.

/** Problem `code`s of a 410 from either invite call. */
export const INVITE_EXPIRED = 'invite_expired';
export const INVITE_USED = 'invite_used';
/** Problem `code` of a 422 from accept: the password breaks the rules; `detail` says which. */
export const INVALID_PASSWORD = 'invalid_password';

export interface InviteInfo {
  email: string;
  /** RFC 3339, UTC. */
  expires_at: string;
}

export interface AcceptInviteBody {
  name: string;
  password: string;
}

@Injectable({ providedIn: 'root' })
export class InvitesApi {
  private readonly http = inject(HttpClient);

  /** What the invite is for. 404: no such token; 410 `invite_expired` or `invite_used`. */
  lookup(token: string): Observable<InviteInfo> {
    return this.http.get<InviteInfo>(inviteUrl(token));
  }

  /** Sets the new user's name and password; 201 with the now active `User`. */
  accept(token: string, body: AcceptInviteBody): Observable<User> {
    // Only these two fields: the gateway refuses unknown ones.
    const { name, password } = body;
    return this.http.post<User>(`${inviteUrl(token)}/accept`, { name, password });
  }
}

// The router hands over the token decoded; a URL-safe base64 token may still end in "=" padding,
// and anything pasted wrongly must stay inside its one path segment.
function inviteUrl(token: string): string {
  return `${API_BASE}/auth/invites/${encodeURIComponent(token)}`;
}
