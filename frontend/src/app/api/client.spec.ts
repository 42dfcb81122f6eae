import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { Api, buildParams, buildUrl } from './client';

describe('Api', () => {
  it('puts each path parameter in its own encoded segment', () => {
    expect(buildUrl('/api/v1/nodes/{id}', { id: 'a/b c' })).toBe('/api/v1/nodes/a%2Fb%20c');
    expect(() => buildUrl('/api/v1/nodes/{id}', {})).toThrow('no value for {id}');
  });

  it('leaves unset query parameters out', () => {
    const params = buildParams({
      status: 'active',
      user_id: null,
      node_id: undefined,
      q: '',
      limit: 50,
    });
    expect(params.toString()).toBe('status=active&limit=50');
  });

  it('sends the typed call as a request with its path, query and body', () => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    const api = TestBed.inject(Api);
    const http = TestBed.inject(HttpTestingController);
    let reply: unknown;

    api
      .patch('/api/v1/users/{id}', { path: { id: 'u1' }, body: { role: 'admin' } })
      .subscribe((r) => (reply = r));
    const req = http.expectOne({ method: 'PATCH', url: '/api/v1/users/u1' });
    expect(req.request.body).toEqual({ role: 'admin' });
    req.flush({ id: 'u1' });
    api.get('/api/v1/assignments', { query: { status: 'active', limit: 500 } }).subscribe();
    http
      .expectOne('/api/v1/assignments?status=active&limit=500')
      .flush({ items: [], next_cursor: null });

    expect(reply).toEqual({ id: 'u1' });
    http.verify();
  });
});
