import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter, withComponentInputBinding } from '@angular/router';

import { App } from '../app';
import { routes } from '../app.routes';
import { sessionInterceptor } from '../core/session.interceptor';
import { ADMIN, answerMe, nextRequest, problem } from '../testing/http.testing';

describe('Login', () => {
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [App],
      providers: [
        provideRouter(routes, withComponentInputBinding()),
        provideHttpClient(withInterceptors([sessionInterceptor])),
        provideHttpClientTesting(),
      ],
    });
    http = TestBed.inject(HttpTestingController);
  });

  async function open(url: string) {
    const fixture = TestBed.createComponent(App);
    const navigated = TestBed.inject(Router).navigateByUrl(url);
    await answerMe(http, null);
    await navigated;
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;
    const field = (label: string) =>
      Array.from(el.querySelectorAll('mat-form-field'))
        .find((f) => f.querySelector('mat-label')?.textContent?.trim() === label)
        ?.querySelector('input') as HTMLInputElement;
    const type = (label: string, value: string) => {
      const input = field(label);
      input.value = value;
      input.dispatchEvent(new Event('input'));
    };
    const submit = async () => {
      (el.querySelector('button[type=submit]') as HTMLButtonElement).click();
      await fixture.whenStable();
    };
    return { fixture, el, field, type, submit };
  }

  it('signs in and goes on to the page the person wanted', async () => {
    const page = await open('/login?next=%2Fadmin%2Faudit');
    page.type('Email', ' grace@lab.org ');
    page.type('Password', 'a long passphrase');
    await page.submit();

    const login = await nextRequest(http, { method: 'POST', url: '/api/v1/auth/login' });
    expect(login.request.body).toEqual({ email: 'grace@lab.org', password: 'a long passphrase' });
    login.flush({ user: ADMIN, csrf_token: 'tok' });
    await page.fixture.whenStable();

    await vi.waitFor(() => expect(TestBed.inject(Router).url).toBe('/admin/audit'));
  });

  it('never follows next= to another site', async () => {
    const page = await open('/login?next=%2F%2Fevil.example%2Fx');
    page.type('Email', 'grace@lab.org');
    page.type('Password', 'a long passphrase');
    await page.submit();
    (await nextRequest(http, { url: '/api/v1/auth/login' })).flush({
      user: ADMIN,
      csrf_token: 't',
    });

    await vi.waitFor(() => expect(TestBed.inject(Router).url).toBe('/'));
  });

  it('says "wrong email or password" for a 401 and clears the password', async () => {
    const page = await open('/login');
    page.type('Email', 'grace@lab.org');
    page.type('Password', 'wrong');
    await page.submit();
    (await nextRequest(http, { url: '/api/v1/auth/login' })).flush(
      problem(401, 'invalid_credentials', 'invalid credentials'),
      { status: 401, statusText: 'Unauthorized' },
    );
    await page.fixture.whenStable();

    expect(page.el.querySelector('[role=alert]')?.textContent).toContain(
      'Wrong email or password.',
    );
    expect(page.field('Password').value).toBe('');
    expect(TestBed.inject(Router).url).toBe('/login');
  });

  it('says how long to wait after too many attempts', async () => {
    const page = await open('/login');
    page.type('Email', 'grace@lab.org');
    page.type('Password', 'wrong');
    await page.submit();
    (await nextRequest(http, { url: '/api/v1/auth/login' })).flush(
      problem(429, 'too_many_attempts'),
      { status: 429, statusText: 'Too Many Requests', headers: { 'Retry-After': '125' } },
    );
    await page.fixture.whenStable();

    expect(page.el.querySelector('[role=alert]')?.textContent).toContain(
      'Too many attempts. Try again in 3 minutes.',
    );
  });

  it('sends nothing while the form is incomplete', async () => {
    const page = await open('/login');
    page.type('Email', 'not-an-email');
    await page.submit();

    expect(http.match({ url: '/api/v1/auth/login' })).toHaveLength(0);
    expect(page.el.textContent).toContain('Enter an email address');
  });

  it('fills in the email it is given (after accepting an invite)', async () => {
    const page = await open('/login?email=ada%40lab.org');

    expect(page.field('Email').value).toBe('ada@lab.org');
  });
});
