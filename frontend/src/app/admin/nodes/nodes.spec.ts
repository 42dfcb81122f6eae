import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { HttpRequest } from '@angular/common/http';

import type { Assignment, Node } from '../../api';
import { USER, nextRequest } from '../../testing/http.testing';
import { Nodes } from './nodes';
import {
  BOB,
  ENROLLMENT,
  PEOPLE,
  assignment,
  button,
  gpu,
  node,
  page,
  settle,
} from './nodes.testing';

const path =
  (p: string, method = 'GET') =>
  (req: HttpRequest<unknown>) =>
    req.url === p && req.method === method;

describe('Nodes', () => {
  let fixture: ComponentFixture<Nodes>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const stable = () => fixture.whenStable();

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [Nodes],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Nodes);
    el = fixture.nativeElement as HTMLElement;
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((c) => (c.innerHTML = ''));
  });

  async function answer(nodes: Node[], assignments: Assignment[] = []): Promise<void> {
    const nodesReq = await nextRequest(http, path('/api/v1/nodes'));
    const assignmentsReq = await nextRequest(http, path('/api/v1/assignments'));
    const usersReq = http.match(path('/api/v1/users'));
    expect(nodesReq.request.params.get('limit')).toBe('500');
    expect(assignmentsReq.request.params.get('status')).toBe('active');
    expect(assignmentsReq.request.params.get('limit')).toBe('500');
    nodesReq.flush(page(nodes));
    assignmentsReq.flush(page(assignments));
    usersReq.forEach((r) => r.flush(page(PEOPLE)));
    await settle(stable);
  }

  const card = (hostname: string) => el.querySelector<HTMLElement>(`[data-node="${hostname}"]`);
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';

  /** A card's facts, term to description. */
  const facts = (c: Element) =>
    Object.fromEntries(
      Array.from(c.querySelectorAll('.facts dt')).map((dt) => [
        text(dt),
        text(dt.nextElementSibling),
      ]),
    );

  it('shows each node with its state in words, facts and a GPU map of who holds what', async () => {
    const gpu01 = node('gpu-01');
    await answer([gpu01], [assignment('a1', gpu01.id, USER.id, [gpu(1)])]);

    const c = card('gpu-01')!;
    expect(text(c.querySelector('h2'))).toBe('gpu-01');
    expect(text(c.querySelector('[data-testid=node-status]'))).toBe('Online');
    expect(text(c.querySelector('[data-testid=last-seen]'))).toMatch(/^Last seen /);
    expect(facts(c)).toEqual({
      Type: 'linux',
      'Management IP': '192.0.2.10',
      'Agent version': '1.4.0',
      CPU: 'AMD EPYC 7543, 32 cores',
      RAM: '256 GiB',
    });

    const map = c.querySelector('ul[aria-label="GPU map of gpu-01"]')!;
    const tiles = Array.from(map.querySelectorAll('li')).map((li) =>
      Array.from(li.children).map(text).join(' | '),
    );
    expect(tiles).toEqual([
      'GPU 0 | NVIDIA A100-SXM4-80GB | 80 GiB | MIG capable, MIG not enabled | Free',
      'GPU 1 | NVIDIA A100-SXM4-80GB | 80 GiB | MIG capable, MIG not enabled | Held by ada@lab.org',
    ]);
    expect(button('New enrollment token for gpu-01')).toBeDefined();
    expect(button('Delete gpu-01')).toBeDefined();
  });

  it('says a new node waits for its agent, which has reported no GPUs yet', async () => {
    await answer([
      node('gpu-02', {
        status: 'pending',
        hardware: null,
        last_seen_at: null,
        agent_version: null,
      }),
    ]);

    const c = card('gpu-02')!;
    expect(text(c.querySelector('[data-testid=node-status]'))).toBe('Waiting for the agent');
    expect(text(c.querySelector('[data-testid=last-seen]'))).toBe('Never seen');
    expect(text(c)).toContain(
      'No GPUs reported yet: the agent reports them with its first heartbeat.',
    );
    expect(c.querySelector('ul[aria-label^="GPU map"]')).toBeNull();
  });

  it('shows what keeps a node from getting its whole state, and nothing when all is well', async () => {
    const problem =
      'assignment a1 left out of the heartbeat reply: with it the reply would not fit the limit';
    await answer([node('gpu-01', { problems: [problem] }), node('gpu-02')]);

    const box = card('gpu-01')!.querySelector('[data-testid=node-problems]')!;
    expect(text(box.querySelector('p'))).toBe('Not everything reaches this node:');
    expect(Array.from(box.querySelectorAll('li')).map(text)).toEqual([problem]);
    expect(card('gpu-02')!.querySelector('[data-testid=node-problems]')).toBeNull();
  });

  it('hides deleted nodes until "Show deleted nodes" is ticked', async () => {
    await answer([node('gpu-01'), node('old-01', { status: 'revoked' })]);
    expect(card('old-01')).toBeNull();

    const checkbox = el.querySelector<HTMLInputElement>('mat-checkbox input')!;
    expect(text(el.querySelector('mat-checkbox'))).toBe('Show deleted nodes');
    checkbox.click();
    await settle(stable);

    const old = card('old-01')!;
    expect(text(old.querySelector('[data-testid=node-status]'))).toBe('Deleted');
    expect(button('Delete old-01')).toBeUndefined();
    expect(button('New enrollment token for old-01')).toBeUndefined();
  });

  it('says what to do when there are no nodes', async () => {
    await answer([]);
    expect(text(el)).toContain(
      'No nodes yet. Add one with "Add node"; the page shows the command to run on the machine.',
    );
  });

  it('asks before deleting, naming the assignments that end, then deletes and loads again', async () => {
    const gpu01 = node('gpu-01');
    await answer(
      [gpu01],
      [assignment('a1', gpu01.id, USER.id, [gpu(0)]), assignment('a2', gpu01.id, BOB.id, [gpu(1)])],
    );

    button('Delete gpu-01')!.click();
    await settle(stable);
    const dialog = document.querySelector('mat-dialog-container')!;
    expect(text(dialog.querySelector('h2'))).toBe('Delete gpu-01?');
    expect(text(dialog)).toContain(
      "This ends 2 active assignments: ada@lab.org, bob@lab.org. The node's certificate is revoked; the agent must enroll again to come back.",
    );
    http.expectNone(path('/api/v1/nodes/id-gpu-01', 'DELETE'));

    button('Delete node')!.click();
    const del = await nextRequest(http, path('/api/v1/nodes/id-gpu-01', 'DELETE'));
    del.flush({ ...gpu01, status: 'revoked' });
    await settle(stable);
    // What shows next is what the server says: the page asks again.
    await nextRequest(http, path('/api/v1/nodes'));
  });

  it('does nothing when the delete is cancelled', async () => {
    await answer([node('gpu-01')]);
    button('Delete gpu-01')!.click();
    await settle(stable);
    button('Cancel')!.click();
    await settle(stable);
    http.expectNone(path('/api/v1/nodes/id-gpu-01', 'DELETE'));
  });

  it('makes a new enrollment token after asking, and shows its install command once', async () => {
    await answer([node('gpu-01', { status: 'offline' })]);

    button('New enrollment token for gpu-01')!.click();
    await settle(stable);
    expect(text(document.querySelector('mat-dialog-container'))).toContain('must enroll again');
    expect(text(document.querySelector('mat-dialog-container'))).toContain(
      'so does its certificate, at once: the agent there now locks or removes every account it manages',
    );
    button('Create enrollment token')!.click();
    const post = await nextRequest(http, path('/api/v1/nodes/id-gpu-01/enrollment-tokens', 'POST'));
    post.flush(ENROLLMENT, { status: 201, statusText: 'Created' });
    await settle(stable);

    const dialog = Array.from(document.querySelectorAll('mat-dialog-container')).at(-1)!;
    expect(text(dialog.querySelector('h2'))).toBe('Install the agent');
    expect(text(dialog.querySelector('[data-testid=install-command]'))).toBe(
      ENROLLMENT.install_command,
    );
    expect(text(dialog)).toContain(
      'This command is shown only once. Copy it now: it holds a one-time enrollment token.',
    );
    expect(button('Copy install command')).toBeDefined();
    expect(button('Copy CA fingerprint')).toBeDefined();
    button('Done')!.click();
    await settle(stable);
  });
});
