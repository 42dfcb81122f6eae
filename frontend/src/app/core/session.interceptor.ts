import { HttpErrorResponse, HttpInterceptorFn } from '@angular/common/http';
import { inject } from '@angular/core';
import { catchError, throwError } from 'rxjs';

import { API_BASE } from '../api';
import { Auth } from './auth';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
// A 401 from these is an answer about the credentials, not a session that ended.
const NOT_A_SESSION = [`${API_BASE}/auth/login`, `${API_BASE}/auth/me`];

/**
 * Sends the session's CSRF token with every state-changing API call, and on a 401 from any other
 * call (the session expired, the account was disabled, a logout in another tab) sends the person to
 * the sign-in page.
 */
export const sessionInterceptor: HttpInterceptorFn = (req, next) => {
  if (!req.url.startsWith(API_BASE)) {
    return next(req);
  }
  const auth = inject(Auth);
  const token = auth.csrfToken();
  const sent =
    token && STATE_CHANGING.has(req.method)
      ? req.clone({ setHeaders: { 'X-CSRF-Token': token } })
      : req;
  return next(sent).pipe(
    catchError((err: unknown) => {
      if (
        err instanceof HttpErrorResponse &&
        err.status === 401 &&
        !NOT_A_SESSION.some((url) => req.url.startsWith(url)) &&
        !req.url.startsWith(`${API_BASE}/auth/invites/`)
      ) {
        auth.sessionEnded();
      }
      return throwError(() => err);
    }),
  );
};
