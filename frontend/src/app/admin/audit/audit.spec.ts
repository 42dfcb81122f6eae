import { provideHttpClient } from '@angular/common/http';
import {
  HttpTestingController,
  TestRequest,
  provideHttpClientTesting,
} from '@angular/common/http/testing';
import { HarnessLoader } from '@angular/cdk/testing';
import { TestbedHarnessEnvironment } from '@angular/cdk/testing/testbed';
import { TestBed } from '@angular/core/testing';
import { MatButtonHarness } from '@angular/material/button/testing';
import { MatFormFieldHarness } from '@angular/material/form-field/testing';
import { MatInputHarness } from '@angular/material/input/testing';
import { MatSelectHarness } from '@angular/material/select/testing';
import { Router, provideRouter } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import type { AuditEntry } from '../../api';
import { ADMIN, USER, nextRequest, problem } from '../../testing/http.testing';
import { Audit } from './audit';
import { localToUtc, utcToLocal } from './audit-query';
import { entry } from './audit.testing';

const LOG = '/api/v1/audit-log';

// Material's component harnesses wait for the page to settle after every step: a few seconds per
// test on a busy 2-core machine, past Vitest's default 5 s.
describe('Audit', { timeout: 20_000 }, () => {
  let httpTesting: HttpTestingController;
  let harness: RouterTestingHarness;
  let loader: HarnessLoader;
  let el: HTMLElement;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [
        provideRouter([{ path: 'admin/audit', component: Audit }]),
        provideHttpClient(),
        provideHttpClientTesting(),
      ],
    });
    httpTesting = TestBed.inject(HttpTestingController);
  });

  /** Opens the page at `url`, answering the users list and the chain check. */
  async function open(url = '/admin/audit'): Promise<void> {
    harness = await RouterTestingHarness.create();
    await harness.navigateByUrl(url, Audit);
    el = harness.routeNativeElement as HTMLElement;
    loader = TestbedHarnessEnvironment.loader(harness.fixture);
    const users = await nextRequest(httpTesting, (r) => r.url === '/api/v1/users');
    expect(users.request.params.get('limit')).toBe('500');
    users.flush({ items: [ADMIN, USER], next_cursor: null });
    (await nextRequest(httpTesting, (r) => r.url === '/api/v1/audit-log/verify')).flush({
      valid: true,
      checked: 3,
      first_bad_id: null,
      problem: null,
      next_cursor: null,
      checked_at: '2030-01-02T03:04:05Z',
    });
  }

  /** The page's next request for the log: its query, and a way to answer it. */
  async function logRequest(): Promise<{ query: Record<string, string>; req: TestRequest }> {
    const req = await nextRequest(httpTesting, (r) => r.url === LOG);
    const params = req.request.params;
    return { req, query: Object.fromEntries(params.keys().map((k) => [k, params.get(k) ?? ''])) };
  }

  async function answer(items: AuditEntry[], next_cursor: string | null = null): Promise<void> {
    (await logRequest()).req.flush({ items, next_cursor });
    await harness.fixture.whenStable();
  }

  const urlQuery = () => {
    const router = TestBed.inject(Router);
    return router.parseUrl(router.url).queryParams;
  };
  const text = () => el.textContent?.replace(/\s+/g, ' ') ?? '';
  const button = (text: string) => loader.getHarness(MatButtonHarness.with({ text }));
  const field = (label: string) =>
    loader.getHarness(MatFormFieldHarness.with({ floatingLabelText: label }));
  const input = async (label: string) =>
    (await (await field(label)).getControl(MatInputHarness)) as MatInputHarness;
  const select = async (label: string) =>
    (await (await field(label)).getControl(MatSelectHarness)) as MatSelectHarness;

  it('asks the API for the filters in the URL and shows them in the form', async () => {
    await open('/admin/audit?action=user.invited&since=2030-01-02T01:04:00Z&limit=25');

    const { query, req } = await logRequest();
    expect(query).toEqual({ action: 'user.invited', since: '2030-01-02T01:04:00Z', limit: '25' });
    req.flush({ items: [entry(1)], next_cursor: null });
    await harness.fixture.whenStable();

    expect(await (await input('Action')).getValue()).toBe('user.invited');
    expect(await (await input('From')).getValue()).toBe(utcToLocal('2030-01-02T01:04:00Z'));
    expect(await (await select('Rows per page')).getValueText()).toBe('25');
    expect(el.querySelectorAll('tr.entry')).toHaveLength(1);
  });

  it('puts the applied filters in the URL and the API query, times in UTC', async () => {
    await open();
    const first = await logRequest();
    expect(first.query).toEqual({ limit: '50' });
    first.req.flush({ items: [entry(1)], next_cursor: null });
    await harness.fixture.whenStable();

    const actor = await select('Actor');
    await actor.open();
    await actor.clickOptions({ text: `${USER.name} (${USER.email})` });
    await (await input('Action')).setValue('auth.login');
    await (await input('Target type')).setValue('node');
    await (await input('From')).setValue('2030-01-02T03:04');
    await (await input('Until')).setValue('2030-01-03T00:00');
    await (await button('Apply filters')).click();

    const since = localToUtc('2030-01-02T03:04');
    const until = localToUtc('2030-01-03T00:00');
    expect(since).toMatch(/Z$/);
    const expected = { actor_id: USER.id, action: 'auth.login', target_type: 'node', since, until };
    expect(urlQuery()).toEqual(expected);
    expect((await logRequest()).query).toEqual({ ...expected, limit: '50' });
  });

  it('refuses an "Until" before "From" without changing the URL', async () => {
    await open();
    await answer([entry(1)]);

    await (await input('From')).setValue('2030-01-02T03:04');
    await (await input('Until')).setValue('2030-01-01T03:04');
    await (await button('Apply filters')).click();

    expect(el.querySelector('[role=alert]')?.textContent).toContain(
      '"Until" must be later than "From".',
    );
    expect(urlQuery()).toEqual({});
    httpTesting.expectNone((r) => r.url === LOG);
  });

  it('clears the filters but keeps the page size', async () => {
    await open('/admin/audit?action=auth.login&target_id=n-1&limit=100');
    await answer([]);

    await (await button('Clear filters')).click();

    expect(urlQuery()).toEqual({ limit: '100' });
    expect((await logRequest()).query).toEqual({ limit: '100' });
    expect(await (await input('Action')).getValue()).toBe('');
  });

  it('pages forward with each next_cursor and back with the cursors it kept', async () => {
    await open('/admin/audit?action=user.invited');
    await answer([entry(1)], 'c2');
    expect(text()).toContain('Page 1');
    expect(await (await button('Previous page')).isDisabled()).toBe(true);

    await (await button('Next page')).click();
    let { query, req } = await logRequest();
    expect(query).toEqual({ action: 'user.invited', limit: '50', cursor: 'c2' });
    req.flush({ items: [entry(2)], next_cursor: 'c3' });
    await harness.fixture.whenStable();
    expect(text()).toContain('Page 2');

    await (await button('Next page')).click();
    ({ query, req } = await logRequest());
    expect(query['cursor']).toBe('c3');
    req.flush({ items: [entry(3)], next_cursor: null });
    await harness.fixture.whenStable();
    expect(text()).toContain('Page 3');
    expect(await (await button('Next page')).isDisabled()).toBe(true);

    await (await button('Previous page')).click();
    ({ query, req } = await logRequest());
    expect(query['cursor']).toBe('c2');
    req.flush({ items: [entry(2)], next_cursor: 'c3' });
    await harness.fixture.whenStable();
    expect(text()).toContain('Page 2');

    await (await button('Previous page')).click();
    ({ query, req } = await logRequest());
    expect(query).toEqual({ action: 'user.invited', limit: '50' });
    req.flush({ items: [entry(1)], next_cursor: 'c2' });
    await harness.fixture.whenStable();
    expect(text()).toContain('Page 1');
    // The page is not in the URL: a link or a reload opens page 1 of the same filters.
    expect(urlQuery()).toEqual({ action: 'user.invited' });
  });

  it('goes back to page 1 with a new page size, kept in the URL', async () => {
    await open();
    await answer([entry(1)], 'c2');
    await (await button('Next page')).click();
    await answer([entry(2)], 'c3');

    await (await input('Action')).setValue('typed.not_applied');
    const size = await select('Rows per page');
    await size.open();
    await size.clickOptions({ text: '100' });

    expect(urlQuery()).toEqual({ limit: '100' });
    expect(await (await input('Action')).getValue()).toBe('typed.not_applied');
    expect((await logRequest()).query).toEqual({ limit: '100' });
    expect(text()).toContain('Page 1');
  });

  it('says when nothing matches', async () => {
    await open('/admin/audit?action=nothing.ever');
    await answer([]);

    expect(text()).toContain('No audit entries match these filters.');
    expect(el.querySelector('table')).toBeNull();
  });

  it('says why the log could not be loaded, and tries again', async () => {
    await open();
    (await logRequest()).req.flush(problem(422, 'invalid_request', 'limit is too large'), {
      status: 422,
      statusText: 'Unprocessable Entity',
    });
    await harness.fixture.whenStable();

    expect(el.querySelector('app-list-state [role=alert]')?.textContent).toContain(
      'Could not load audit entries: Limit is too large.',
    );
    await (await button('Try again')).click();
    await answer([entry(1)]);
    expect(el.querySelectorAll('tr.entry')).toHaveLength(1);
  });

  it('shows the audit chain check', async () => {
    await open();
    await answer([]);

    expect(text()).toContain('Audit chain valid (3 entries checked)');
  });
});
