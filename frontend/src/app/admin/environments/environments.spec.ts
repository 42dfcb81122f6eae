import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import type { Environment, Node } from '../../api';
import { nextRequest, problem } from '../../testing/http.testing';
import { button, field, node, page, settle } from '../nodes/nodes.testing';
import { Environments } from './environments';
import { TEACHING } from './environments.testing';

const path =
  (p: string, method = 'GET') =>
  (req: HttpRequest<unknown>) =>
    req.url === p && req.method === method;

const NODES: Node[] = [
  node('gpu-01'),
  node('gpu-02', { status: 'pending', hardware: null }),
  node('gpu-03', { status: 'offline' }),
  node('old-01', { status: 'revoked' }),
];

describe('Environments', () => {
  let fixture: ComponentFixture<Environments>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const stable = () => fixture.whenStable();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const card = (name: string) => el.querySelector<HTMLElement>(`[data-environment="${name}"]`)!;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [Environments],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Environments);
    el = fixture.nativeElement as HTMLElement;
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((c) => (c.innerHTML = ''));
  });

  async function answer(environments: Environment[], nodes: Node[] = NODES): Promise<void> {
    const envReq = await nextRequest(http, path('/api/v1/environments'));
    expect(envReq.request.params.get('limit')).toBe('500');
    envReq.flush(page(environments));
    (await nextRequest(http, path('/api/v1/nodes'))).flush(page(nodes));
    await settle(stable);
  }

  const facts = (c: Element) =>
    Object.fromEntries(
      Array.from(c.querySelectorAll('.facts dt')).map((dt) => [
        text(dt),
        text(dt.nextElementSibling),
      ]),
    );

  it('shows each Environment with its modes explained, its defaults and its nodes by host name', async () => {
    await answer([
      TEACHING,
      {
        ...TEACHING,
        id: 'env-2',
        name: 'open',
        enforcement_mode: 'soft',
        tunnel_provider: 'netbird',
        default_cpus: 0,
        default_ram_mb: 0,
        default_expiry_hours: null,
        node_ids: [],
      },
    ]);

    expect(text(card('teaching').querySelector('h2'))).toBe('teaching');
    expect(facts(card('teaching'))).toEqual({
      'Enforcement mode':
        'cgroup: CPU and RAM limits, and only the assigned GPU devices are visible.',
      'Tunnel provider':
        'ssh_proxy_jump: Users reach the node through an SSH jump host; nothing else to run.',
      'Default CPUs': '4',
      'Default RAM': '16 GiB',
      'Default expiry': '24 hours',
      'Self-service': 'off: Only admins assign its GPUs.',
    });
    const attached = card('teaching').querySelector('ul[aria-label="Nodes attached to teaching"]')!;
    expect(Array.from(attached.querySelectorAll('.host')).map(text)).toEqual(['gpu-01']);
    expect(button('Detach gpu-01 from teaching')).toBeDefined();
    expect(button('Edit teaching')).toBeDefined();
    expect(button('Delete teaching')).toBeDefined();

    expect(facts(card('open'))).toMatchObject({
      'Default CPUs': 'no limit',
      'Default RAM': 'no limit',
      'Default expiry': 'none',
    });
    expect(facts(card('open'))['Enforcement mode']).toContain('CUDA_VISIBLE_DEVICES');
    expect(text(card('open'))).toContain('No node attached yet');
  });

  it('says what to do when there are none', async () => {
    await answer([]);
    expect(text(el)).toContain('No Environments yet. Create one, then attach nodes to it.');
  });

  it('attaches a node chosen among the live ones not attached yet', async () => {
    await answer([TEACHING]);
    const select = field<HTMLElement>('Node to attach to teaching');
    select.click();
    await settle(stable);
    const options = Array.from(document.querySelectorAll('mat-option'));
    expect(options.map(text)).toEqual(['gpu-02', 'gpu-03']);
    (options[1] as HTMLElement).click();
    await settle(stable);

    button('Attach node to teaching')!.click();
    const req = await nextRequest(http, path('/api/v1/environments/env-1/nodes', 'POST'));
    expect(req.request.body).toEqual({ node_id: 'id-gpu-03' });
    req.flush(null, { status: 204, statusText: 'No Content' });
    await settle(stable);
    await nextRequest(http, path('/api/v1/environments'));
  });

  it("shows the server's words next to the select when the node cannot serve mig", async () => {
    await answer([{ ...TEACHING, enforcement_mode: 'mig' }]);
    field<HTMLElement>('Node to attach to teaching').click();
    await settle(stable);
    (document.querySelector('mat-option') as HTMLElement).click();
    await settle(stable);

    button('Attach node to teaching')!.click();
    (await nextRequest(http, path('/api/v1/environments/env-1/nodes', 'POST'))).flush(
      problem(
        409,
        'node_not_mig_capable',
        'node gpu-02 has reported no MIG-capable GPU; it cannot serve a `mig` environment',
      ),
      { status: 409, statusText: 'Conflict' },
    );
    await settle(stable);

    const alert = card('teaching').querySelector('[data-testid=attach-error]')!;
    expect(alert.getAttribute('role')).toBe('alert');
    expect(text(alert)).toBe(
      'Node gpu-02 has reported no MIG-capable GPU; it cannot serve a `mig` environment.',
    );
  });

  it('asks before detaching, saying the assignments there go on', async () => {
    await answer([TEACHING]);
    button('Detach gpu-01 from teaching')!.click();
    await settle(stable);
    expect(text(document.querySelector('mat-dialog-container'))).toContain(
      'Its assignments there go on until they end.',
    );
    button('Detach node')!.click();
    const req = await nextRequest(
      http,
      path('/api/v1/environments/env-1/nodes/id-gpu-01', 'DELETE'),
    );
    req.flush(null, { status: 204, statusText: 'No Content' });
    await settle(stable);
  });

  it('says in words why an Environment in use was not deleted', async () => {
    await answer([TEACHING]);
    button('Delete teaching')!.click();
    await settle(stable);
    button('Delete Environment')!.click();
    (await nextRequest(http, path('/api/v1/environments/env-1', 'DELETE'))).flush(
      problem(
        409,
        'environment_in_use',
        'the environment has 2 active assignment(s); revoke them first',
      ),
      { status: 409, statusText: 'Conflict' },
    );
    await settle(stable);

    const alert = card('teaching').querySelector('[data-testid=action-error]')!;
    expect(alert.getAttribute('role')).toBe('alert');
    expect(text(alert)).toBe(
      'teaching still has active assignments, so it was not deleted. Revoke them on the Assignments page (or wait until they end), then delete it.',
    );
  });

  it('opens the form for a new Environment, and pre-filled for an edit', async () => {
    await answer([TEACHING]);
    button('New Environment')!.click();
    await settle(stable);
    expect(text(document.querySelector('mat-dialog-container h2'))).toBe('New Environment');
    button('Cancel')!.click();
    await settle(stable);

    button('Edit teaching')!.click();
    await settle(stable);
    const dialogs = document.querySelectorAll('mat-dialog-container');
    expect(text(dialogs[dialogs.length - 1].querySelector('h2'))).toBe('Edit teaching');
    expect(button('Save changes')).toBeDefined();
  });
});
