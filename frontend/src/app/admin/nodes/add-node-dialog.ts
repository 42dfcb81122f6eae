import { ChangeDetectionStrategy, Component, inject, output, signal } from '@angular/core';
import {
  AbstractControl,
  FormControl,
  FormGroup,
  ReactiveFormsModule,
  ValidationErrors,
} from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { firstValueFrom } from 'rxjs';

import { Api, type Node, type NodeCreated, codeOf, describeHttpError, statusOf } from '../../api';
import { InstallCommand } from './install-command';
import { showFieldErrors } from './field-errors';
import { hostnameError, ipError, portError } from './node-checks';
import { TYPE_WORDS } from './node-text';

function check(rule: (value: string) => string | null) {
  return (control: AbstractControl<string>): ValidationErrors | null => {
    const message = rule(control.value ?? '');
    return message ? { rule: message } : null;
  };
}

/** The control's message to show: the server's, else the rule's. */
function messageOf(control: AbstractControl): string | null {
  const errors = control.errors;
  return (
    (errors?.['server'] as string | undefined) ?? (errors?.['rule'] as string | undefined) ?? null
  );
}

/**
 * "Add node": host name, type and management IP; once the server made the node, the same dialog
 * shows its install command, this once. The dialog closes with the new node (or nothing).
 */
@Component({
  selector: 'app-add-node-dialog',
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    InstallCommand,
  ],
  template: `
    @if (created(); as done) {
      <h2 mat-dialog-title>Install the agent</h2>
      <mat-dialog-content>
        <app-install-command [hostname]="done.node.hostname" [enrollment]="done.enrollment" />
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-flat-button type="button" (click)="close()">Done</button>
      </mat-dialog-actions>
    } @else {
      <h2 mat-dialog-title>Add node</h2>
      <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
        <mat-dialog-content>
          <p class="lead">
            gpulab makes the node and a one-time install command to run on the machine. The node
            stays "waiting for the agent" until the agent's first heartbeat.
          </p>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>Host name</mat-label>
            <input matInput formControlName="hostname" autocomplete="off" spellcheck="false" />
            <mat-hint>As the machine is known in the lab, e.g. gpu-01.lab.org.</mat-hint>
            <mat-error>{{ error('hostname') }}</mat-error>
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>Type</mat-label>
            <mat-select formControlName="type">
              <mat-select-trigger>{{ form.controls.type.value }}</mat-select-trigger>
              @for (type of types; track type.value) {
                <mat-option [value]="type.value">
                  <span class="choice">{{ type.label }}</span>
                  <span class="note">{{ ' ' + type.sentence }}</span>
                </mat-option>
              }
            </mat-select>
            <mat-hint>{{ typeWords[form.controls.type.value].sentence }}</mat-hint>
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>Management IP</mat-label>
            <input matInput formControlName="management_ip" autocomplete="off" spellcheck="false" />
            <mat-hint>The address the lab's admins reach the machine at (IPv4 or IPv6).</mat-hint>
            <mat-error>{{ error('management_ip') }}</mat-error>
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>SSH port</mat-label>
            <input matInput formControlName="ssh_port" inputmode="numeric" autocomplete="off" />
            <mat-hint
              >The port of the node's sshd; users' SSH configs name it when it is not 22.</mat-hint
            >
            <mat-error>{{ error('ssh_port') }}</mat-error>
          </mat-form-field>
          @if (serverError(); as message) {
            <p class="form-error" role="alert">{{ message }}</p>
          }
        </mat-dialog-content>
        <mat-dialog-actions align="end">
          <button mat-button type="button" mat-dialog-close>Cancel</button>
          <button mat-flat-button type="submit" [disabled]="submitting()">
            {{ submitting() ? 'Creating node…' : 'Create node' }}
          </button>
        </mat-dialog-actions>
      </form>
    }
  `,
  styles: `
    mat-form-field {
      display: block;
      margin-bottom: 0.75rem;
    }
    .choice {
      display: block;
      font-weight: 600;
    }
    .note {
      display: block;
      font-size: 0.85rem;
      color: var(--muted);
    }
    .form-error {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AddNodeDialog {
  private readonly api = inject(Api);
  private readonly ref = inject<MatDialogRef<AddNodeDialog, Node>>(MatDialogRef);

  protected readonly typeWords = TYPE_WORDS;
  protected readonly types = (['linux', 'proxmox', 'jump'] as const).map((value) => ({
    value,
    ...TYPE_WORDS[value],
  }));

  protected readonly form = new FormGroup({
    hostname: new FormControl('', { nonNullable: true, validators: check(hostnameError) }),
    type: new FormControl<Node['type']>('linux', { nonNullable: true }),
    management_ip: new FormControl('', { nonNullable: true, validators: check(ipError) }),
    ssh_port: new FormControl('22', { nonNullable: true, validators: check(portError) }),
  });

  protected readonly submitting = signal(false);
  protected readonly serverError = signal<string | null>(null);
  protected readonly created = signal<NodeCreated | null>(null);
  /** The node, as soon as the server made it (the dialog stays open to show its command). */
  readonly nodeCreated = output<Node>();

  protected error(name: 'hostname' | 'management_ip' | 'ssh_port'): string | null {
    return messageOf(this.form.controls[name]);
  }

  async submit(): Promise<void> {
    if (this.submitting()) {
      return;
    }
    this.serverError.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    const { hostname, type, management_ip, ssh_port } = this.form.getRawValue();
    this.submitting.set(true);
    try {
      const result = await firstValueFrom(
        this.api.post('/api/v1/nodes', {
          body: {
            hostname: hostname.trim(),
            type,
            management_ip: management_ip.trim(),
            ssh_port: Number(ssh_port.trim()),
          },
        }),
      );
      this.created.set(result);
      this.nodeCreated.emit(result.node);
      // From here on the token is on screen: only "Done" may close the dialog.
      this.ref.disableClose = true;
    } catch (err) {
      this.serverError.set(this.describe(err));
    } finally {
      this.submitting.set(false);
    }
  }

  protected close(): void {
    this.ref.close(this.created()?.node);
  }

  private describe(err: unknown): string {
    const hostname = this.form.controls.hostname.value.trim();
    switch (codeOf(err)) {
      case 'node_exists':
        return `A node named ${hostname} exists already. Pick another host name, or delete the old node first.`;
      case 'invalid_request':
        return showFieldErrors(this.form, err)
          ? 'The server refused some fields: see the messages under them.'
          : describeHttpError(err);
    }
    if (statusOf(err) === 503) {
      return `${describeHttpError(err)} Nothing was created.`;
    }
    return describeHttpError(err);
  }
}
