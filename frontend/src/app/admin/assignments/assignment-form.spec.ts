import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { HarnessLoader } from '@angular/cdk/testing';
import { TestbedHarnessEnvironment } from '@angular/cdk/testing/testbed';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { MatFormFieldHarness } from '@angular/material/form-field/testing';
import { MatRadioGroupHarness } from '@angular/material/radio/testing';
import { MatSelectHarness } from '@angular/material/select/testing';

import type { Assignment } from '../../api';
import { ADMIN, nextRequest, problem } from '../../testing/http.testing';
import { AssignmentForm } from './assignment-form';
import {
  ENVIRONMENTS,
  GPU01,
  ML,
  NODES,
  USERS,
  assignment,
  gpu,
  button,
  inputLabelled,
  typeInto,
} from './assignments.testing';

const ACTIVE = (req: HttpRequest<unknown>) =>
  req.method === 'GET' && req.url === '/api/v1/assignments';
const CREATE = { method: 'POST', url: '/api/v1/assignments' };

describe('AssignmentForm', () => {
  let fixture: ComponentFixture<AssignmentForm>;
  let httpTesting: HttpTestingController;
  let loader: HarnessLoader;
  let el: HTMLElement;
  let created: Assignment[];

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [AssignmentForm],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    httpTesting = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(AssignmentForm);
    fixture.componentRef.setInput('users', USERS);
    fixture.componentRef.setInput('environments', ENVIRONMENTS);
    fixture.componentRef.setInput('nodes', NODES);
    created = [];
    fixture.componentInstance.created.subscribe((a) => created.push(a));
    el = fixture.nativeElement as HTMLElement;
    loader = TestbedHarnessEnvironment.loader(fixture);
    const active = await nextRequest(httpTesting, ACTIVE);
    expect(active.request.params.get('status')).toBe('active');
    // Three of gpu-01's GPUs are taken.
    active.flush({
      items: [assignment(), assignment({ id: 'x2', gpus: [gpu(4, 'GPU-4')] })],
      next_cursor: null,
    });
    await fixture.whenStable();
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  const select = async (label: string) =>
    (await loader.getHarness(MatFormFieldHarness.with({ floatingLabelText: label }))).getControl(
      MatSelectHarness,
    ) as Promise<MatSelectHarness>;
  const placement = () =>
    loader.getHarness(MatRadioGroupHarness.with({ selector: '[aria-labelledby=placement-label]' }));
  const value = (label: string) => inputLabelled(el, label).value;

  async function fill(): Promise<void> {
    await (await select('User')).clickOptions({ text: 'grace@lab.org' });
    await (await select('Environment')).clickOptions({ text: 'ml-lab' });
  }

  it('lists active users, those without an SSH key disabled with the reason', async () => {
    const users = await select('User');
    await users.open();
    const options = await users.getOptions();
    const shown = await Promise.all(
      options.map(async (o) => ({ text: await o.getText(), disabled: await o.isDisabled() })),
    );

    expect(shown).toEqual([
      { text: 'ada@lab.org — no SSH key yet, cannot be assigned', disabled: true },
      { text: 'grace@lab.org', disabled: false },
    ]);
    expect(el.textContent).toContain(
      'Only users with an SSH key can get GPUs: they add one on their SSH keys page.',
    );
  });

  it("fills CPUs, RAM and hours from the chosen Environment's defaults", async () => {
    expect(value('CPUs')).toBe('0');

    await (await select('Environment')).clickOptions({ text: 'ml-lab' });
    expect([value('CPUs'), value('RAM (MiB)'), value('Hours')]).toEqual(['8', '32768', '24']);
    expect(el.textContent).toContain('32 GiB');

    await (await select('Environment')).clickOptions({ text: 'quick' });
    expect([value('CPUs'), value('RAM (MiB)'), value('Hours')]).toEqual(['0', '0', '']);
    expect(el.textContent).toContain('Empty: no expiry.');
    expect(el.textContent).toContain('0 = no limit.');
  });

  it('sends exactly the body of the API for dynamic placement', async () => {
    await fill();
    typeInto(inputLabelled(el, 'GPUs'), '2');
    const before = Date.now();
    button(el, 'Create assignment')!.click();

    const req = await nextRequest(httpTesting, CREATE);
    const { expires_at, ...rest } = req.request.body as Record<string, unknown>;
    expect(rest).toEqual({
      user_id: ADMIN.id,
      environment_id: ML.id,
      gpus: 2,
      cpus: 8,
      ram_mb: 32768,
      placement: 'dynamic',
    });
    expect(expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const in24h = Date.parse(expires_at as string) - before;
    expect(Math.abs(in24h - 24 * 3_600_000)).toBeLessThan(5_000);

    req.flush(assignment());
    await fixture.whenStable();
    expect(created.length).toBe(1);
  });

  it('needs a node for fixed placement, and lists the free GPUs of each', async () => {
    await fill();
    await (await placement()).checkRadioButton({ label: 'Fixed: on the node I pick' });
    button(el, 'Create assignment')!.click();
    await fixture.whenStable();

    httpTesting.expectNone(CREATE);
    expect(el.querySelector('mat-error')?.textContent).toContain('Fixed placement needs a node');

    const nodes = await select('Node');
    await nodes.open();
    const texts = await Promise.all((await nodes.getOptions()).map((o) => o.getText()));
    // Sorted by host name; the revoked gpu-03 is not a choice.
    expect(texts).toEqual([
      'gpu-01 — 5 of 8 GPUs free, online',
      'gpu-02 — 2 of 2 GPUs free, offline',
    ]);

    await nodes.clickOptions({ text: /^gpu-01/ });
    typeInto(inputLabelled(el, 'Hours'), '');
    button(el, 'Create assignment')!.click();
    const req = await nextRequest(httpTesting, CREATE);
    expect(req.request.body).toEqual({
      user_id: ADMIN.id,
      environment_id: ML.id,
      gpus: 1,
      cpus: 8,
      ram_mb: 32768,
      placement: 'fixed',
      node_id: GPU01.id,
    });
  });

  it('shows no_capacity in words with the server detail', async () => {
    await fill();
    button(el, 'Create assignment')!.click();
    (await nextRequest(httpTesting, CREATE)).flush(
      problem(
        409,
        'no_capacity',
        'not enough free GPUs: 1 asked for, at most 0 free on one online node',
      ),
      { status: 409, statusText: 'Conflict' },
    );
    await fixture.whenStable();

    expect(el.querySelector('[role=alert]')?.textContent).toContain(
      'gpulab found no place for this assignment (not enough free GPUs: 1 asked for, at most 0 free on one online node).',
    );
    expect(created.length).toBe(0);
  });

  it('shows user_has_no_ssh_key and invalid_request in words', async () => {
    await fill();
    button(el, 'Create assignment')!.click();
    (await nextRequest(httpTesting, CREATE)).flush(problem(422, 'user_has_no_ssh_key'), {
      status: 422,
      statusText: 'Unprocessable Entity',
    });
    await fixture.whenStable();
    expect(el.querySelector('[role=alert]')?.textContent).toContain(
      'grace@lab.org has no SSH key yet, so they cannot get GPUs',
    );

    button(el, 'Create assignment')!.click();
    (await nextRequest(httpTesting, CREATE)).flush(
      problem(422, 'invalid_request', 'the node is not attached to this environment'),
      { status: 422, statusText: 'Unprocessable Entity' },
    );
    await fixture.whenStable();
    expect(el.querySelector('[role=alert]')?.textContent).toContain(
      'The node is not attached to this environment.',
    );
  });

  it('refuses fewer than one GPU', async () => {
    await fill();
    typeInto(inputLabelled(el, 'GPUs'), '0');
    button(el, 'Create assignment')!.click();
    await fixture.whenStable();
    httpTesting.expectNone(CREATE);
    expect(el.textContent).toContain('At least 1, a whole number.');
  });
});
