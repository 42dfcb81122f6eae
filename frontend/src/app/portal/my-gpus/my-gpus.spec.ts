import { Clipboard } from '@angular/cdk/clipboard';
import { provideHttpClient } from '@angular/common/http';
import {
  HttpTestingController,
  TestRequest,
  provideHttpClientTesting,
} from '@angular/common/http/testing';
import { Component } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { provideRouter, withComponentInputBinding } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import type { Assignment } from '../../api';
import { Auth } from '../../core/auth';
import { USER, problem } from '../../testing/http.testing';
import { MyGpus } from './my-gpus';
import {
  ACTIVE,
  ACTIVE_NETBIRD,
  EXPIRED,
  NETBIRD_ACCESS,
  REVOKED,
  SSH_ACCESS,
  list,
} from './my-gpus.testing';

@Component({ template: '<h1>SSH keys</h1>' })
class KeysStub {}

const LIST = (req: { method: string; urlWithParams: string }) =>
  req.method === 'GET' && req.urlWithParams === '/api/v1/me/assignments?limit=500';
const accessUrl = (a: Assignment) => `/api/v1/me/assignments/${a.id}/access`;

describe('MyGpus', () => {
  let harness: RouterTestingHarness;
  let http: HttpTestingController;
  let el: HTMLElement;

  const $ = <T extends Element = HTMLElement>(selector: string) => el.querySelector<T>(selector);
  const stable = () => harness.fixture.whenStable();
  const card = (a: Assignment) => $(`article[data-assignment-id="${a.id}"]`);
  /** A card's facts, term -> description, blanks collapsed. */
  const facts = (root: Element) =>
    Object.fromEntries(
      Array.from(root.querySelectorAll('dl > div')).map((pair) => [
        pair.querySelector('dt')?.textContent?.trim(),
        pair.querySelector('dd')?.textContent?.replace(/\s+/g, ' ').trim(),
      ]),
    );
  const buttonsIn = (root: Element | null) =>
    Array.from(root?.querySelectorAll('button') ?? []).map((b) => b.textContent?.trim());

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [
        provideRouter(
          [
            { path: '', component: MyGpus },
            { path: 'assignments/:id', component: MyGpus },
            { path: 'keys', component: KeysStub },
          ],
          withComponentInputBinding(),
        ),
        provideHttpClient(),
        provideHttpClientTesting(),
      ],
    });
    http = TestBed.inject(HttpTestingController);
    TestBed.inject(Auth).refresh({ ...USER, has_ssh_key: true });
    harness = await RouterTestingHarness.create();
  });

  afterEach(() => http.verify());

  /** The next request that matches, waiting for the poll to make it. */
  async function waitFor(match: typeof LIST, ms: number): Promise<TestRequest> {
    for (let waited = 0; waited < ms; waited += 50) {
      const found = http.match(match);
      if (found.length) {
        return found[0];
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('no request came');
  }

  async function open(url = '/'): Promise<void> {
    await harness.navigateByUrl(url);
    el = harness.routeNativeElement!;
    await stable();
  }

  /** Opens the page and answers the list, and each access request made for it. */
  async function openWith(items: Assignment[], url = '/'): Promise<void> {
    await open(url);
    http.expectOne(LIST).flush(list(...items));
    await stable();
  }

  it('loads the list with the largest page', async () => {
    await open();
    expect($('[role=status]')?.textContent).toContain('Loading your GPUs');
    const req = http.expectOne(LIST);
    expect(req.request.params.get('limit')).toBe('500');
    req.flush(list());
  });

  it('shows each active assignment as a card: node, GPUs, limits, expiry, access', async () => {
    await openWith([ACTIVE, ACTIVE_NETBIRD]);
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    http.expectOne(accessUrl(ACTIVE_NETBIRD)).flush(NETBIRD_ACCESS);
    await stable();

    const first = card(ACTIVE)!;
    expect(first.querySelector('h2')?.textContent?.trim()).toBe('gpu-01.lab');
    expect(first.getAttribute('aria-labelledby')).toBe(first.querySelector('h2')?.id);
    expect(first.textContent).toContain('Deep learning');
    const gpus = Array.from(first.querySelectorAll('.gpus li')).map((li) =>
      li.textContent?.replace(/\s+/g, ' ').trim(),
    );
    expect(gpus).toEqual([
      'GPU 0 · NVIDIA A100-SXM4-80GB · 80 GiB GPU-5c1d6a3e-1111-2222-3333-444455556666',
      'GPU 1 · NVIDIA A100-SXM4-80GB · 80 GiB GPU-5c1d6a3e-7777-8888-9999-000011112222',
    ]);
    expect(facts(first)).toMatchObject({ GPUs: gpus.join(' '), CPUs: '16 cores', RAM: '128 GiB' });
    expect(first.querySelector('app-countdown time')?.getAttribute('datetime')).toBe(
      ACTIVE.expires_at,
    );

    const second = card(ACTIVE_NETBIRD)!;
    expect(second.querySelector('h2')?.textContent?.trim()).toBe('gpu-02.lab');
    expect(second.querySelector('.gpus li')?.textContent).toContain('GPU 3');
    expect(facts(second)).toMatchObject({
      GPU: 'GPU 3 GPU-0000-3',
      CPUs: 'no limit',
      RAM: 'no limit',
      'Linux user': 'ada',
      Ends: 'no expiry',
    });
  });

  it("focuses the named assignment's extra hours when opened from the expiry mail", async () => {
    await openWith([ACTIVE, ACTIVE_NETBIRD], `/?extend=1&assignment=${ACTIVE_NETBIRD.id}`);
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    http.expectOne(accessUrl(ACTIVE_NETBIRD)).flush(NETBIRD_ACCESS);
    await stable();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(document.activeElement?.getAttribute('data-testid')).toBe(
      `extra-hours-${ACTIVE_NETBIRD.id}`,
    );
  });

  it('focuses the first extra hours when the mail names no assignment', async () => {
    await openWith([ACTIVE, ACTIVE_NETBIRD], '/?extend=1');
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    http.expectOne(accessUrl(ACTIVE_NETBIRD)).flush(NETBIRD_ACCESS);
    await stable();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(document.activeElement?.getAttribute('data-testid')).toBe(`extra-hours-${ACTIVE.id}`);
  });

  it('renders the SSH config and command, with their copy buttons', async () => {
    await openWith([ACTIVE]);
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();
    const clipboard = TestBed.inject(Clipboard);
    const copy = vi.spyOn(clipboard, 'copy').mockReturnValue(true);

    const c = card(ACTIVE)!;
    expect(c.querySelector('pre[data-testid=ssh-config]')?.textContent).toBe(SSH_ACCESS.ssh_config);
    expect(c.querySelector('pre[data-testid=ssh-command]')?.textContent).toBe(
      SSH_ACCESS.ssh_command,
    );
    expect(c.textContent).toContain('ssh gpulab-gpu-01.lab');
    expect(buttonsIn(c)).toEqual(['Copy SSH config', 'Copy SSH command', 'Extend', 'Release']);

    Array.from(c.querySelectorAll('button'))
      .find((b) => b.textContent?.trim() === 'Copy SSH config')!
      .click();
    expect(copy).toHaveBeenCalledWith(SSH_ACCESS.ssh_config);
  });

  it('renders the NetBird setup key and command, and when the key expires', async () => {
    await openWith([ACTIVE_NETBIRD]);
    http.expectOne(accessUrl(ACTIVE_NETBIRD)).flush(NETBIRD_ACCESS);
    await stable();

    const c = card(ACTIVE_NETBIRD)!;
    expect(c.querySelector('pre[data-testid=setup-key]')?.textContent).toBe(
      NETBIRD_ACCESS.setup_key,
    );
    expect(c.querySelector('pre[data-testid=netbird-command]')?.textContent).toBe(
      'netbird up --setup-key A1B2C3D4-0000-1111-2222-333344445555 --management-url https://netbird.lab.org:33073',
    );
    expect(buttonsIn(c)).toEqual(['Copy setup key', 'Copy NetBird command', 'Extend', 'Release']);
    expect(c.querySelector('.access app-countdown time')?.getAttribute('datetime')).toBe(
      NETBIRD_ACCESS.expires_at,
    );
  });

  it('refreshes every 3 s, asking for each access once (a NetBird key is made per request)', async () => {
    await openWith([ACTIVE]);
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();

    const again = await waitFor(LIST, 4000);
    again.flush(list(ACTIVE, ACTIVE_NETBIRD));
    await stable();
    http.expectNone(accessUrl(ACTIVE));
    http.expectOne(accessUrl(ACTIVE_NETBIRD)).flush(NETBIRD_ACCESS);
    await stable();
    expect(card(ACTIVE)?.querySelector('pre[data-testid=ssh-config]')).not.toBeNull();
    expect(card(ACTIVE_NETBIRD)?.querySelector('pre[data-testid=setup-key]')).not.toBeNull();
  });

  it.each([
    [409, 'assignment_not_active', 'This assignment has ended, so it can no longer be reached.'],
    [
      502,
      'access_provider_unavailable',
      'The way to reach this node is not available right now: SSH access is not configured.',
    ],
  ])('says in the card why access failed (%i %s), and tries again', async (status, code, words) => {
    await openWith([ACTIVE]);
    http
      .expectOne(accessUrl(ACTIVE))
      .flush(problem(status, code, 'SSH access is not configured'), { status, statusText: 'x' });
    await stable();

    const alert = card(ACTIVE)!.querySelector('[role=alert]');
    expect(alert?.textContent).toContain(words);
    const retry = Array.from(alert!.querySelectorAll('button')).find(
      (b) => b.textContent?.trim() === 'Get access details for gpu-01.lab again',
    )!;
    retry.click();
    await stable();
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();
    expect(card(ACTIVE)!.querySelector('[role=alert]')).toBeNull();
  });

  it('says access is still being set up while the node has not reported it, and asks again at each refresh', async () => {
    await openWith([ACTIVE]);
    http
      .expectOne(accessUrl(ACTIVE))
      .flush(problem(409, 'access_not_ready', 'the node has not reported the port yet'), {
        status: 409,
        statusText: 'x',
      });
    await stable();
    expect(card(ACTIVE)!.querySelector('[role=alert]')).toBeNull();
    expect(card(ACTIVE)!.querySelector('[role=status]')?.textContent).toContain(
      'Your access is still being set up on the node. The node has not reported the port yet.',
    );

    (await waitFor(LIST, 4000)).flush(list(ACTIVE));
    await stable();
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();
    expect(card(ACTIVE)?.querySelector('pre[data-testid=ssh-config]')).not.toBeNull();

    // Ready now: the next refresh asks for nothing more.
    (await waitFor(LIST, 4000)).flush(list(ACTIVE));
    await stable();
    http.expectNone(accessUrl(ACTIVE));
  }, 10_000); // two refreshes of 3 s

  it('shows the agent state in words when the reply has it', async () => {
    const failed = { ...ACTIVE, node_state: 'failed', node_message: 'no such GPU' } as Assignment;
    await openWith([failed]);
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();
    expect($('[data-testid=agent-state]')?.textContent?.trim()).toBe(
      'Setting it up on the node failed: no such GPU',
    );
  });

  it('lists ended assignments in a closed panel below, newest first', async () => {
    await openWith([REVOKED, ACTIVE, EXPIRED]);
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();

    const header = $('mat-expansion-panel-header');
    expect(header?.textContent).toContain('Ended assignments (2)');
    expect(header?.getAttribute('aria-expanded')).toBe('false');
    const rows = Array.from(el.querySelectorAll('mat-expansion-panel li'));
    expect(rows.map((r) => r.querySelector('.ended__host')?.textContent)).toEqual([
      'gpu-04.lab',
      'gpu-03.lab',
    ]);
    expect(rows[0].textContent).toContain('Expired');
    expect(rows[1].textContent).toContain('Revoked');
    // Only the active one is a card; ended ones get no access request.
    expect(el.querySelectorAll('article').length).toBe(1);
  });

  it('has no panel when nothing has ended', async () => {
    await openWith([]);
    expect($('mat-expansion-panel')).toBeNull();
  });

  it('tells someone without a key to add one first', async () => {
    TestBed.inject(Auth).refresh({ ...USER, has_ssh_key: false });
    await openWith([]);
    const empty = $('[data-testid=empty]');
    expect(empty?.textContent).toContain('Add an SSH key first');
    expect(empty?.querySelector('a')?.getAttribute('href')).toBe('/keys');
  });

  it('tells someone with a key to ask an admin', async () => {
    await openWith([EXPIRED]);
    expect($('[data-testid=empty]')?.textContent?.trim()).toBe(
      'No GPUs assigned to you yet. Ask for some under Request GPUs, or ask an admin.',
    );
    // Ended ones are still there to look at.
    expect($('mat-expansion-panel-header')?.textContent).toContain('Ended assignments (1)');
  });

  it('offers to try again when the list cannot be loaded', async () => {
    await open();
    http.expectOne(LIST).flush(problem(503, 'service_unavailable', 'scheduler is down'), {
      status: 503,
      statusText: 'Service Unavailable',
    });
    await stable();
    expect($('[role=alert]')?.textContent).toContain('Could not load your GPUs');
    $<HTMLButtonElement>('[role=alert] button')!.click();
    await stable();
    http.expectOne(LIST).flush(list());
  });

  it('reads every page when there are more than 500', async () => {
    await open();
    http.expectOne(LIST).flush({ items: [REVOKED], next_cursor: 'c2' });
    const second = http.expectOne(
      (req) => req.urlWithParams === '/api/v1/me/assignments?limit=500&cursor=c2',
    );
    second.flush(list(ACTIVE));
    await stable();
    http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
    await stable();
    expect(card(ACTIVE)).not.toBeNull();
    expect($('mat-expansion-panel-header')?.textContent).toContain('Ended assignments (1)');
  });

  describe('opened from a link, /assignments/:id', () => {
    // jsdom has no scrollIntoView: each test puts a spy in its place, removed afterwards.
    afterEach(() => {
      delete (Element.prototype as Partial<Element>).scrollIntoView;
    });

    it('marks that card and scrolls it into view', async () => {
      const scroll = vi.fn();
      Element.prototype.scrollIntoView = scroll;
      await openWith([ACTIVE, ACTIVE_NETBIRD], `/assignments/${ACTIVE_NETBIRD.id}`);
      http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
      http.expectOne(accessUrl(ACTIVE_NETBIRD)).flush(NETBIRD_ACCESS);
      await stable();

      expect(card(ACTIVE_NETBIRD)?.getAttribute('aria-current')).toBe('true');
      expect(card(ACTIVE)?.getAttribute('aria-current')).toBeNull();
      expect(scroll).toHaveBeenCalledTimes(1);
      expect(scroll.mock.contexts[0]).toBe(card(ACTIVE_NETBIRD));
    });

    it('opens the ended panel for an ended one', async () => {
      Element.prototype.scrollIntoView = vi.fn();
      await openWith([ACTIVE, REVOKED], `/assignments/${REVOKED.id}`);
      http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
      await stable();

      expect($('mat-expansion-panel-header')?.getAttribute('aria-expanded')).toBe('true');
      expect($(`li[data-assignment-id="${REVOKED.id}"]`)?.getAttribute('aria-current')).toBe(
        'true',
      );
    });

    it("says so when the assignment is not among the caller's", async () => {
      await openWith([ACTIVE], '/assignments/a1a1a1a1-0000-4000-8000-0000000000ff');
      http.expectOne(accessUrl(ACTIVE)).flush(SSH_ACCESS);
      await stable();
      expect($('[data-testid=not-found]')?.textContent).toContain('not one of yours');
    });
  });
});
