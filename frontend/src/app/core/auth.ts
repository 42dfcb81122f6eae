import { HttpErrorResponse } from '@angular/common/http';
import { Injectable, computed, inject, signal } from '@angular/core';
import { Router } from '@angular/router';
import { Observable, catchError, finalize, firstValueFrom, map, of, shareReplay, tap } from 'rxjs';

import { Api, User, statusOf } from '../api';

/** Set in localStorage by a logout, so that every other tab of the app follows at once. */
export const LOGOUT_SIGNAL_KEY = 'gpulab.logout';
/** Where the sign-in page sends a person afterwards: the app's own paths only. */
export const NEXT_PARAM = 'next';

/**
 * Who is signed in, and the session's CSRF token. The cookie itself is HttpOnly: the app learns
 * about the session only from the server (`POST /auth/login`, `GET /auth/me`), never stores a
 * secret, and forgets everything when the server says the session ended (any 401).
 */
@Injectable({ providedIn: 'root' })
export class Auth {
  private readonly api = inject(Api);
  private readonly router = inject(Router);
  private pending?: Observable<User | null>;

  /** undefined: not asked yet; null: nobody signed in. */
  private readonly current = signal<User | null | undefined>(undefined);
  private csrf: string | null = null;

  readonly user = this.current.asReadonly();
  readonly isAdmin = computed(() => this.current()?.role === 'admin');
  /** A short message for the next page (e.g. why the person was sent there). */
  readonly notice = signal<string | null>(null);

  constructor() {
    if (typeof window !== 'undefined') {
      window.addEventListener('storage', (event) => {
        if (event.key === LOGOUT_SIGNAL_KEY && event.newValue) {
          this.sessionEnded('You signed out in another tab.');
        }
      });
    }
  }

  csrfToken(): string | null {
    return this.csrf;
  }

  /** The signed-in user, asking the server once (`GET /auth/me`); null when nobody is. */
  whoAmI(): Promise<User | null> {
    const known = this.current();
    if (known !== undefined) {
      return Promise.resolve(known);
    }
    this.pending ??= this.api.getResponse('/api/v1/auth/me').pipe(
      map((response) => {
        this.csrf = response.headers.get('X-CSRF-Token') ?? this.csrf;
        return response.body;
      }),
      catchError((err: unknown) => {
        if (statusOf(err) === 401) {
          return of(null);
        }
        throw err;
      }),
      tap((user) => this.current.set(user)),
      finalize(() => (this.pending = undefined)),
      shareReplay(1),
    );
    return firstValueFrom(this.pending);
  }

  /** Signs in; the caller shows the error (describeHttpError) when it fails. */
  login(email: string, password: string): Observable<User> {
    return this.api.post('/api/v1/auth/login', { body: { email, password } }).pipe(
      map((result) => {
        this.csrf = result.csrf_token;
        this.current.set(result.user);
        this.notice.set(null);
        return result.user;
      }),
    );
  }

  /** Ends the session on the server, tells the other tabs, and goes to the sign-in page. */
  async logout(): Promise<void> {
    try {
      await firstValueFrom(this.api.post('/api/v1/auth/logout'));
    } catch (err) {
      // The session is gone already (or the server is): either way this tab forgets it.
      if (!(err instanceof HttpErrorResponse)) {
        throw err;
      }
    }
    try {
      window.localStorage.setItem(LOGOUT_SIGNAL_KEY, String(Date.now()));
      window.localStorage.removeItem(LOGOUT_SIGNAL_KEY);
    } catch {
      // Storage may be off (private mode); the other tabs then learn at their next request.
    }
    this.forget();
    await this.router.navigateByUrl('/login');
  }

  /** The user as the server now describes them (after a change that affects has_ssh_key, say). */
  refresh(user: User): void {
    this.current.set(user);
  }

  /**
   * The server said the session is over (a 401): forget it and go to the sign-in page, which
   * brings the person back here afterwards.
   */
  sessionEnded(message = 'Your session has ended. Sign in again to continue.'): void {
    const wasSignedIn = this.current() !== null && this.current() !== undefined;
    this.forget();
    const here = this.router.url;
    if (here.startsWith('/login') || here.startsWith('/invite/')) {
      return;
    }
    if (wasSignedIn) {
      this.notice.set(message);
    }
    void this.router.navigate(['/login'], { queryParams: { [NEXT_PARAM]: here } });
  }

  private forget(): void {
    this.current.set(null);
    this.csrf = null;
  }
}

/** `next` if it is a path of this app, else `/`: a link must not send a person to another site. */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) {
    return '/';
  }
  return next.startsWith('/login') ? '/' : next;
}
