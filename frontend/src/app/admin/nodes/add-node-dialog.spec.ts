import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ApplicationRef } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { MatDialog, MatDialogRef, MatDialogState } from '@angular/material/dialog';

import type { Node } from '../../api';
import { problem } from '../../testing/http.testing';
import { AddNodeDialog } from './add-node-dialog';
import { ENROLLMENT, button, choose, field, node, settle, typeInto } from './nodes.testing';

const CREATE = { method: 'POST', url: '/api/v1/nodes' };

describe('AddNodeDialog', () => {
  let http: HttpTestingController;
  let ref: MatDialogRef<AddNodeDialog, Node>;
  const stable = () => TestBed.inject(ApplicationRef).whenStable();
  const dialog = () => document.querySelector('mat-dialog-container')!;
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const alert = () => text(dialog().querySelector('[role=alert]'));
  const errors = () => Array.from(dialog().querySelectorAll('mat-error')).map(text);

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    ref = TestBed.inject(MatDialog).open(AddNodeDialog);
    await settle(stable);
  });

  afterEach(async () => {
    TestBed.inject(MatDialog).closeAll();
    await settle(stable);
    http.verify();
  });

  async function fill(hostname: string, ip: string): Promise<void> {
    typeInto(field('Host name'), hostname);
    typeInto(field('Management IP'), ip);
    await settle(stable);
  }

  async function submit(): Promise<void> {
    button('Create node')!.click();
    await settle(stable);
  }

  it('has the labelled fields, linux chosen, each type explained in a sentence', async () => {
    expect(text(dialog().querySelector('h2'))).toBe('Add node');
    expect(field('Host name')).toBeDefined();
    expect(field('Management IP')).toBeDefined();
    const type = field<HTMLElement>('Type');
    expect(text(type)).toBe('linux');
    expect(text(dialog())).toContain('A Linux machine with GPUs');

    await choose(type, 'proxmox', stable);
    expect(text(type)).toBe('proxmox');
    expect(text(dialog())).toContain('A Proxmox VE host');
  });

  it('checks the host name and the IP before asking the server', async () => {
    await submit();
    expect(errors()).toEqual(['Enter the host name.', 'Enter the management IP address.']);

    await fill('gpu_01', '300.1.2.3');
    await submit();
    expect(errors()[0]).toContain('RFC 1123');
    expect(errors()[1]).toContain('Enter an IPv4 address (192.0.2.10) or an IPv6 address');
    http.expectNone(CREATE);

    await fill('gpu-01', '2001:db8::10');
    expect(errors()).toEqual([]);
  });

  it('takes the SSH port from 1 to 65535 and sends it as a number', async () => {
    await fill('gpu-01', '192.0.2.10');
    for (const bad of ['0', '65536', '22a', '']) {
      typeInto(field('SSH port'), bad);
      await submit();
      expect(errors()).toEqual([
        bad
          ? 'Use a port from 1 to 65535.'
          : "Enter the port of the node's sshd (22 unless it was moved).",
      ]);
    }
    http.expectNone(CREATE);
    typeInto(field('SSH port'), ' 65535 ');
    await submit();
    expect(http.expectOne(CREATE).request.body.ssh_port).toBe(65535);
  });

  it('creates the node and then shows its install command once, closing only with "Done"', async () => {
    await fill(' GPU-01 ', '192.0.2.10');
    await choose(field<HTMLElement>('Type'), 'proxmox', stable);
    await submit();

    const req = http.expectOne(CREATE);
    expect(req.request.body).toEqual({
      hostname: 'GPU-01',
      type: 'proxmox',
      management_ip: '192.0.2.10',
      ssh_port: 22,
    });
    const created = node('gpu-01', { status: 'pending', type: 'proxmox' });
    req.flush({ node: created, enrollment: ENROLLMENT }, { status: 201, statusText: 'Created' });
    await settle(stable);

    expect(text(dialog().querySelector('h2'))).toBe('Install the agent');
    expect(text(dialog().querySelector('[data-testid=install-command]'))).toBe(
      ENROLLMENT.install_command,
    );
    expect(dialog().querySelector('pre code')).not.toBeNull();
    expect(text(dialog())).toContain(
      'This command is shown only once. Copy it now: it holds a one-time enrollment token.',
    );
    expect(text(dialog().querySelector('[data-testid=ca-fingerprint]'))).toBe(
      ENROLLMENT.ca_fingerprint,
    );
    expect(text(dialog().querySelector('[data-testid=token-expiry]'))).toMatch(
      /\(in 23 h 59 min\), once\.$/,
    );
    expect(button('Copy install command')).toBeDefined();
    expect(button('Copy CA fingerprint')).toBeDefined();
    expect(field.bind(null, 'Host name')).toThrow();
    // A stray Escape or backdrop click must not lose the token.
    expect(ref.disableClose).toBe(true);

    const close = vi.spyOn(ref, 'close');
    button('Done')!.click();
    expect(close).toHaveBeenCalledWith(created);
  });

  it('says in words that the host name is taken (409 node_exists)', async () => {
    await fill('gpu-01', '192.0.2.10');
    await submit();
    http.expectOne(CREATE).flush(problem(409, 'node_exists', 'a node named gpu-01 exists'), {
      status: 409,
      statusText: 'Conflict',
    });
    await settle(stable);

    expect(alert()).toBe(
      'A node named gpu-01 exists already. Pick another host name, or delete the old node first.',
    );
    expect(text(dialog().querySelector('h2'))).toBe('Add node');
    expect(ref.getState()).toBe(MatDialogState.OPEN);
  });

  it("puts the server's field errors (422) under their fields", async () => {
    await fill('gpu-01', '192.0.2.10');
    await submit();
    http.expectOne(CREATE).flush(
      {
        ...problem(422, 'invalid_request', 'the request is not valid'),
        errors: [
          {
            loc: ['body', 'management_ip'],
            msg: 'Value error, must be an IPv4 or IPv6 address',
            type: 'value_error',
          },
        ],
      },
      { status: 422, statusText: 'Unprocessable Content' },
    );
    await settle(stable);

    expect(errors()).toEqual(['Must be an IPv4 or IPv6 address.']);
    expect(alert()).toBe('The server refused some fields: see the messages under them.');
  });

  it('says a service did not answer and nothing was created (503)', async () => {
    await fill('gpu-01', '192.0.2.10');
    await submit();
    http.expectOne(CREATE).flush(problem(503, 'service_unavailable', 'pki did not answer'), {
      status: 503,
      statusText: 'Unavailable',
    });
    await settle(stable);

    expect(alert()).toBe(
      'A gpulab service did not answer (pki did not answer). Try again in a moment. Nothing was created.',
    );
  });
});
