import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { HealthApi, HealthzReply, isHealthzReply } from './healthz';

describe('HealthApi', () => {
  let api: HealthApi;
  let httpTesting: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    api = TestBed.inject(HealthApi);
    httpTesting = TestBed.inject(HttpTestingController);
  });

  afterEach(() => httpTesting.verify());

  it('gets /api/v1/healthz and passes the reply through', () => {
    const reply: HealthzReply = {
      status: 'ok',
      services: { identity: 'ok', pki: 'ok', inventory: 'ok', scheduler: 'ok', notify: 'ok' },
    };
    let received: HealthzReply | undefined;

    api.healthz().subscribe((r) => (received = r));
    httpTesting.expectOne({ method: 'GET', url: '/api/v1/healthz' }).flush(reply);

    expect(received).toEqual(reply);
  });
});

describe('isHealthzReply', () => {
  it('accepts the healthz shape and refuses anything else', () => {
    expect(isHealthzReply({ status: 'degraded', services: {} })).toBe(true);
    expect(isHealthzReply({ status: 'broken', services: {} })).toBe(false);
    expect(isHealthzReply({ type: 'about:blank', title: 'Bad Gateway', status: 502 })).toBe(false);
    expect(isHealthzReply('<html>')).toBe(false);
    expect(isHealthzReply(null)).toBe(false);
  });
});
