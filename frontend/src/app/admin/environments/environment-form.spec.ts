import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ApplicationRef } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { MatDialog, MatDialogRef } from '@angular/material/dialog';

import type { Environment } from '../../api';
import { problem } from '../../testing/http.testing';
import { button, choose, field, settle, typeInto } from '../nodes/nodes.testing';
import { EnvironmentForm, type EnvironmentFormData } from './environment-form';
import { TEACHING } from './environments.testing';

describe('EnvironmentForm', () => {
  let http: HttpTestingController;
  let ref: MatDialogRef<EnvironmentForm, Environment>;
  const stable = () => TestBed.inject(ApplicationRef).whenStable();
  const dialog = () => document.querySelector('mat-dialog-container')!;
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const alert = () => text(dialog().querySelector('[role=alert]'));
  const errors = () => Array.from(dialog().querySelectorAll('mat-error')).map(text);

  async function open(data: EnvironmentFormData = {}): Promise<void> {
    ref = TestBed.inject(MatDialog).open(EnvironmentForm, { data });
    await settle(stable);
  }

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(async () => {
    TestBed.inject(MatDialog).closeAll();
    await settle(stable);
    http.verify();
  });

  it('starts a new Environment with its defaults, each choice explained in one sentence', async () => {
    await open();

    expect(text(dialog().querySelector('h2'))).toBe('New Environment');
    expect(field('Name').value).toBe('');
    expect(text(field<HTMLElement>('Enforcement mode'))).toBe('soft');
    expect(text(dialog().querySelector('[data-testid=mode-sentence]'))).toContain(
      'CUDA_VISIBLE_DEVICES',
    );
    expect(text(field<HTMLElement>('Tunnel provider'))).toBe('ssh_proxy_jump');
    expect(text(dialog().querySelector('[data-testid=provider-sentence]'))).toContain(
      'SSH jump host',
    );
    expect(field('Default CPUs').value).toBe('0');
    expect(field('Default RAM (MiB)').value).toBe('0');
    expect(field('Default expiry (hours)').value).toBe('');

    // Every option carries its sentence, next to the choice.
    field<HTMLElement>('Enforcement mode').click();
    await settle(stable);
    const options = Array.from(document.querySelectorAll('mat-option')).map(text);
    expect(options).toHaveLength(4);
    expect(options[2]).toBe('mig An NVIDIA MIG instance per assigned GPU; needs MIG-capable GPUs.');
  });

  it('creates an Environment with every field', async () => {
    await open();
    typeInto(field('Name'), ' research ');
    await choose(field<HTMLElement>('Enforcement mode'), 'mig', stable);
    await choose(field<HTMLElement>('Tunnel provider'), 'netbird', stable);
    typeInto(field('Default CPUs'), '8');
    typeInto(field('Default expiry (hours)'), '48');
    await settle(stable);
    expect(text(dialog().querySelector('[data-testid=mode-sentence]'))).toContain('MIG-capable');

    const close = vi.spyOn(ref, 'close');
    button('Create Environment')!.click();
    await settle(stable);
    const req = http.expectOne({ method: 'POST', url: '/api/v1/environments' });
    expect(req.request.body).toEqual({
      name: 'research',
      enforcement_mode: 'mig',
      tunnel_provider: 'netbird',
      default_cpus: 8,
      default_ram_mb: 0,
      default_expiry_hours: 48,
      self_service: 'off',
      max_hours: null,
    });
    const created = { ...TEACHING, id: 'env-2', name: 'research' };
    req.flush(created, { status: 201, statusText: 'Created' });
    await settle(stable);
    expect(close).toHaveBeenCalledWith(created);
  });

  it('checks the fields before sending', async () => {
    await open();
    typeInto(field('Default CPUs'), '-1');
    typeInto(field('Default expiry (hours)'), '0');
    button('Create Environment')!.click();
    await settle(stable);

    expect(errors()).toEqual([
      'Enter a name.',
      'Enter 0 or more (0 means no limit).',
      'Enter at least 1 hour, or leave it empty for no expiry.',
    ]);
    http.expectNone({ method: 'POST', url: '/api/v1/environments' });
  });

  it('edits with the Environment filled in, and sends only what changed', async () => {
    await open({ environment: TEACHING });
    expect(text(dialog().querySelector('h2'))).toBe('Edit teaching');
    expect(field('Name').value).toBe('teaching');
    expect(text(field<HTMLElement>('Enforcement mode'))).toBe('cgroup');
    expect(field('Default CPUs').value).toBe('4');
    expect(field('Default RAM (MiB)').value).toBe('16384');
    expect(field('Default expiry (hours)').value).toBe('24');

    typeInto(field('Default RAM (MiB)'), '32768');
    typeInto(field('Default expiry (hours)'), '');
    await settle(stable);
    button('Save changes')!.click();
    await settle(stable);

    const req = http.expectOne({ method: 'PATCH', url: '/api/v1/environments/env-1' });
    expect(req.request.body).toEqual({ default_ram_mb: 32768, default_expiry_hours: null });
    req.flush({ ...TEACHING, default_ram_mb: 32768, default_expiry_hours: null });
    await settle(stable);
  });

  it('sends nothing when nothing changed', async () => {
    await open({ environment: TEACHING });
    const close = vi.spyOn(ref, 'close');
    button('Save changes')!.click();
    await settle(stable);
    http.expectNone({ method: 'PATCH', url: '/api/v1/environments/env-1' });
    expect(close).toHaveBeenCalledWith();
  });

  it("shows the server's words when a node cannot serve mig (409 node_not_mig_capable)", async () => {
    await open({ environment: TEACHING });
    await choose(field<HTMLElement>('Enforcement mode'), 'mig', stable);
    button('Save changes')!.click();
    await settle(stable);

    const req = http.expectOne({ method: 'PATCH', url: '/api/v1/environments/env-1' });
    expect(req.request.body).toEqual({ enforcement_mode: 'mig' });
    req.flush(
      problem(
        409,
        'node_not_mig_capable',
        'node gpu-01 has reported no MIG-capable GPU; it cannot serve a `mig` environment',
      ),
      {
        status: 409,
        statusText: 'Conflict',
      },
    );
    await settle(stable);

    expect(alert()).toBe(
      'Node gpu-01 has reported no MIG-capable GPU; it cannot serve a `mig` environment.',
    );
    expect(text(dialog().querySelector('h2'))).toBe('Edit teaching');
  });

  it('says when the name is taken (409 environment_exists)', async () => {
    await open();
    typeInto(field('Name'), 'teaching');
    await settle(stable);
    button('Create Environment')!.click();
    await settle(stable);
    http
      .expectOne({ method: 'POST', url: '/api/v1/environments' })
      .flush(problem(409, 'environment_exists', 'taken'), { status: 409, statusText: 'Conflict' });
    await settle(stable);

    expect(alert()).toBe('An Environment named teaching exists already: pick another name.');
  });
  it('opens an Environment to self-service with a longest request', async () => {
    await open({ environment: TEACHING });
    expect(text(field<HTMLElement>('Self-service'))).toBe('off');
    expect(field('Longest request (hours)').value).toBe('');
    await choose(field<HTMLElement>('Self-service'), 'auto', stable);
    expect(text(dialog().querySelector('[data-testid=self-service-sentence]'))).toBe(
      'Users request GPUs and get them at once when free, else they queue.',
    );
    typeInto(field('Longest request (hours)'), '0');
    await settle(stable);
    button('Save changes')!.click();
    await settle(stable);
    expect(errors()).toEqual(['Enter at least 1 hour, or leave it empty for no limit.']);
    http.expectNone({ method: 'PATCH', url: '/api/v1/environments/env-1' });

    typeInto(field('Longest request (hours)'), '48');
    await settle(stable);
    button('Save changes')!.click();
    await settle(stable);
    const req = http.expectOne({ method: 'PATCH', url: '/api/v1/environments/env-1' });
    expect(req.request.body).toEqual({ self_service: 'auto', max_hours: 48 });
    req.flush({ ...TEACHING, self_service: 'auto', max_hours: 48 });
    await settle(stable);
  });

  it('sends the self-service fields of a new Environment', async () => {
    await open();
    typeInto(field('Name'), 'lab');
    await choose(field<HTMLElement>('Self-service'), 'approval', stable);
    await settle(stable);
    button('Create Environment')!.click();
    await settle(stable);
    const req = http.expectOne({ method: 'POST', url: '/api/v1/environments' });
    expect(req.request.body).toMatchObject({
      name: 'lab',
      self_service: 'approval',
      max_hours: null,
    });
    req.flush({ ...TEACHING, id: 'env-2', name: 'lab' }, { status: 201, statusText: 'Created' });
    await settle(stable);
  });
});
