import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter, withComponentInputBinding } from '@angular/router';

import { User } from './api';
import { App } from './app';
import { routes } from './app.routes';
import { sessionInterceptor } from './core/session.interceptor';
import { ADMIN, USER, answerMe, nextRequest, problem } from './testing/http.testing';

describe('App', () => {
  let httpTesting: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [App],
      providers: [
        provideRouter(routes, withComponentInputBinding()),
        provideHttpClient(withInterceptors([sessionInterceptor])),
        provideHttpClientTesting(),
      ],
    });
    httpTesting = TestBed.inject(HttpTestingController);
  });

  async function render(url: string, who: User | null): Promise<HTMLElement> {
    const fixture = TestBed.createComponent(App);
    const navigated = TestBed.inject(Router).navigateByUrl(url);
    await answerMe(httpTesting, who);
    await navigated;
    await fixture.whenStable();
    fixture.detectChanges();
    return fixture.nativeElement as HTMLElement;
  }

  const navLinks = (el: HTMLElement) =>
    Array.from(el.querySelectorAll('nav[aria-label=Main] a')).map((a) => a.textContent?.trim());

  it('sends someone not signed in to /login, remembering where they were going', async () => {
    const el = await render('/admin/users', null);

    expect(TestBed.inject(Router).url).toBe('/login?next=%2Fadmin%2Fusers');
    expect(el.querySelector('main h1')?.textContent).toBe('Sign in to gpulab');
    expect(el.querySelector('nav')).toBeNull();
    expect(el.querySelector('button.logout')).toBeNull();
    // Not the "admins only" message: that is for signed-in users only.
    expect(el.textContent).not.toContain('admins only');
  });

  it('gives a user the portal links only, and log out', async () => {
    const el = await render('/', USER);

    expect(navLinks(el)).toEqual(['My GPUs', 'Request GPUs', 'My requests', 'SSH keys']);
    expect(el.querySelector('[data-testid=signed-in-as]')?.textContent).toContain('Ada Lovelace');
    expect(el.querySelector('button.logout')?.textContent?.trim()).toBe('Log out');
  });

  it('gives an admin the dashboard links too', async () => {
    const el = await render('/admin/nodes', ADMIN);

    expect(navLinks(el)).toEqual([
      'My GPUs',
      'Request GPUs',
      'My requests',
      'SSH keys',
      'Nodes',
      'Environments',
      'Users',
      'Assignments',
      'Requests',
      'Groups',
      'Quotas',
      'Usage',
      'Audit log',
    ]);
    expect(el.querySelector('nav a[aria-current=page]')?.textContent?.trim()).toBe('Nodes');
  });

  it('shows a user who opens /admin/... the portal with an "admins only" message', async () => {
    const el = await render('/admin/nodes', USER);

    expect(TestBed.inject(Router).url).toBe('/');
    expect(el.querySelector('.notice[role=status]')?.textContent).toContain('for admins only');
  });

  it('sends the person to /login when a request finds the session ended, and back afterwards', async () => {
    const el = await render('/keys', USER);
    const router = TestBed.inject(Router);

    // Any API call answered 401 (expired, disabled, logged out elsewhere) ends the session here.
    const client = TestBed.inject((await import('./api')).Api);
    client.get('/api/v1/me/ssh-keys').subscribe({ error: () => undefined });
    (await nextRequest(httpTesting, { url: '/api/v1/me/ssh-keys' })).flush(
      problem(401, 'unauthenticated'),
      {
        status: 401,
        statusText: 'Unauthorized',
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 0));

    expect(router.url).toBe('/login?next=%2Fkeys');
    expect(el.querySelector('nav')).toBeNull();
  });

  it('sends the CSRF token with state-changing calls only', async () => {
    await render('/', USER);
    const client = TestBed.inject((await import('./api')).Api);

    client.delete('/api/v1/me/ssh-keys/{id}', { path: { id: 'k1' } }).subscribe();
    client.get('/api/v1/me/ssh-keys').subscribe();
    const del = await nextRequest(httpTesting, { method: 'DELETE' });
    const get = await nextRequest(httpTesting, { url: '/api/v1/me/ssh-keys', method: 'GET' });

    expect(del.request.headers.get('X-CSRF-Token')).toBe('csrf-1');
    expect(get.request.headers.has('X-CSRF-Token')).toBe(false);
  });

  it('shows the invite page without signing in', async () => {
    const fixture = TestBed.createComponent(App);
    await TestBed.inject(Router).navigateByUrl('/invite/abc%3D');
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;

    expect(el.querySelector('main h1')?.textContent).toBe('Join gpulab');
    httpTesting.expectOne('/api/v1/auth/invites/abc%3D');
  });

  it('marks My GPUs as the current page on an assignment of its own', async () => {
    const el = await render('/assignments/4f985c7e-1e9e-4f10-b793-0e8416900c34', USER);

    expect(el.querySelector('nav a[aria-current=page]')?.textContent?.trim()).toBe('My GPUs');
  });

  it('shows a not-found page for an unknown address', async () => {
    const el = await render('/no/such/page', USER);

    expect(el.querySelector('main h1')?.textContent).toBe('Page not found');
  });
});
