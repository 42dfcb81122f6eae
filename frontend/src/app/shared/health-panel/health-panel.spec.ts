import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { HealthzReply } from '../../api';
import { HealthPanel } from './health-panel';

const HEALTHZ = { method: 'GET', url: '/api/v1/healthz' };

const ALL_OK: HealthzReply = {
  status: 'ok',
  services: { identity: 'ok', pki: 'ok', inventory: 'ok', scheduler: 'ok', notify: 'ok' },
};

describe('HealthPanel', () => {
  let fixture: ComponentFixture<HealthPanel>;
  let httpTesting: HttpTestingController;
  let el: HTMLElement;

  /** name -> the state text shown in that service's row. */
  function shownStates(): Record<string, string> {
    const rows = Array.from(el.querySelectorAll<HTMLElement>('[data-service]'));
    return Object.fromEntries(
      rows.map((row) => [
        row.querySelector('.service__name')?.textContent?.trim() ?? '',
        row.querySelector('.service__state')?.textContent?.trim() ?? '',
      ]),
    );
  }

  function panelState(): string | null {
    return el.querySelector('section')?.getAttribute('data-state') ?? null;
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [HealthPanel],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    httpTesting = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(HealthPanel);
    el = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
  });

  afterEach(() => httpTesting.verify());

  it('shows a loading state until the gateway answers', () => {
    httpTesting.expectOne(HEALTHZ);

    expect(panelState()).toBe('loading');
    expect(el.querySelector('section')?.getAttribute('aria-busy')).toBe('true');
    expect(el.querySelector('[role=status]')?.textContent).toContain('Checking services');
    expect(el.querySelectorAll('[data-service]').length).toBe(0);
  });

  it('shows the overall status and every service as ok', async () => {
    httpTesting.expectOne(HEALTHZ).flush(ALL_OK);
    await fixture.whenStable();

    expect(panelState()).toBe('ready');
    expect(el.querySelector('[data-testid=overall]')?.textContent?.trim()).toBe('ok');
    expect(shownStates()).toEqual({
      identity: 'ok',
      pki: 'ok',
      inventory: 'ok',
      scheduler: 'ok',
      notify: 'ok',
    });
    expect(el.querySelector('[role=status]')?.textContent).toContain('All services are running');
  });

  it('names the services that are down when the system is degraded', async () => {
    httpTesting.expectOne(HEALTHZ).flush({
      status: 'degraded',
      services: { ...ALL_OK.services, pki: 'down', notify: 'down' },
    });
    await fixture.whenStable();

    expect(el.querySelector('[data-testid=overall]')?.textContent?.trim()).toBe('degraded');
    expect(shownStates()).toEqual({
      identity: 'ok',
      pki: 'down',
      inventory: 'ok',
      scheduler: 'ok',
      notify: 'down',
    });
    expect(el.querySelector('[data-service=pki]')?.getAttribute('data-state')).toBe('down');
    expect(el.querySelector('[role=status]')?.textContent).toContain('Not running: pki, notify.');
  });

  it('treats a 503 that carries the healthz body as a result, not an error', async () => {
    httpTesting
      .expectOne(HEALTHZ)
      .flush(
        { status: 'degraded', services: { ...ALL_OK.services, scheduler: 'down' } },
        { status: 503, statusText: 'Service Unavailable' },
      );
    await fixture.whenStable();

    expect(panelState()).toBe('ready');
    expect(shownStates()['scheduler']).toBe('down');
  });

  it('shows a service the gateway left out as unknown', async () => {
    const { notify: _left, ...services } = ALL_OK.services;
    httpTesting.expectOne(HEALTHZ).flush({ status: 'ok', services });
    await fixture.whenStable();

    expect(shownStates()['notify']).toBe('unknown');
    expect(el.querySelector('[role=status]')?.textContent).toContain('Not running: notify.');
  });

  it('shows an error when the request fails, and recovers on retry', async () => {
    httpTesting
      .expectOne(HEALTHZ)
      .flush('upstream exploded', { status: 500, statusText: 'Internal Server Error' });
    await fixture.whenStable();

    expect(panelState()).toBe('error');
    const alert = el.querySelector('[role=alert]');
    expect(alert?.textContent).toContain('Could not load the health status');
    expect(alert?.textContent).toContain('500 Internal Server Error');
    expect(el.querySelectorAll('[data-service]').length).toBe(0);

    alert?.querySelector('button')?.click();
    await fixture.whenStable();
    expect(panelState()).toBe('loading');

    httpTesting.expectOne(HEALTHZ).flush(ALL_OK);
    await fixture.whenStable();
    expect(panelState()).toBe('ready');
    expect(Object.keys(shownStates())).toHaveLength(5);
  });

  it('says the gateway could not be reached on a network error', async () => {
    httpTesting.expectOne(HEALTHZ).error(new ProgressEvent('error'));
    await fixture.whenStable();

    expect(el.querySelector('[role=alert]')?.textContent).toContain(
      'The gateway could not be reached.',
    );
  });
});
