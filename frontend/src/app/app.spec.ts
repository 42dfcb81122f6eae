import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';

import { App } from './app';
import { routes } from './app.routes';

describe('App', () => {
  let httpTesting: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [App],
      providers: [provideRouter(routes), provideHttpClient(), provideHttpClientTesting()],
    });
    httpTesting = TestBed.inject(HttpTestingController);
  });

  async function render(url: string): Promise<HTMLElement> {
    const fixture = TestBed.createComponent(App);
    await TestBed.inject(Router).navigateByUrl(url);
    await fixture.whenStable();
    return fixture.nativeElement as HTMLElement;
  }

  it('renders the header and the navigation between the two areas', async () => {
    const el = await render('/');

    expect(el.querySelector('header .brand')?.textContent).toContain('gpulab');
    const links = Array.from(el.querySelectorAll('nav[aria-label=Main] a'));
    expect(links.map((a) => [a.textContent?.trim(), a.getAttribute('href')])).toEqual([
      ['Portal', '/'],
      ['Admin', '/admin'],
    ]);
    httpTesting.expectOne('/api/v1/healthz');
  });

  it('shows the portal at / with the health panel', async () => {
    const el = await render('/');

    expect(el.querySelector('main h1')?.textContent).toBe('Your GPUs');
    expect(el.querySelector('main app-health-panel')).not.toBeNull();
    expect(el.querySelector('nav a[aria-current=page]')?.textContent?.trim()).toBe('Portal');
    httpTesting.expectOne('/api/v1/healthz');
  });

  it('shows the admin area at /admin', async () => {
    const el = await render('/admin');

    expect(el.querySelector('main h1')?.textContent).toBe('Administration');
    expect(el.querySelector('nav a[aria-current=page]')?.textContent?.trim()).toBe('Admin');
    httpTesting.expectOne('/api/v1/healthz');
  });

  it('shows the invite page inside the shell at /invite/:token', async () => {
    const el = await render('/invite/abc%3D');

    expect(el.querySelector('header .brand')).not.toBeNull();
    expect(el.querySelector('main h1')?.textContent).toBe('Join gpulab');
    expect(el.querySelector('nav a[aria-current=page]')).toBeNull();
    httpTesting.expectOne('/api/v1/auth/invites/abc%3D');
  });

  it('shows a not-found page for an unknown address', async () => {
    const el = await render('/no/such/page');

    expect(el.querySelector('main h1')?.textContent).toBe('Page not found');
  });
});
