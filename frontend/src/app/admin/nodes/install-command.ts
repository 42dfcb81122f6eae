import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule } from '@angular/material/dialog';

import type { Enrollment } from '../../api';
import { CopyButton } from '../../shared/copy-button';
import { formatSpan } from '../../shared/format';

/**
 * The one-time install command for a node, with its warning, copy buttons, CA fingerprint and the
 * token's expiry. The token is never fetched again: whoever closes this has to make a new one.
 */
@Component({
  selector: 'app-install-command',
  imports: [DatePipe, CopyButton],
  template: `
    <p class="warning">
      <strong
        >This command is shown only once. Copy it now: it holds a one-time enrollment token.</strong
      >
    </p>
    <p>
      Run it as root on <strong>{{ hostname() }}</strong>. It installs the agent as a systemd
      service and enrolls the node, which turns online with its first heartbeat.
    </p>
    <pre
      class="command"
      data-testid="install-command"
    ><code>{{ enrollment().install_command }}</code></pre>
    <app-copy-button [text]="enrollment().install_command" label="Copy install command" />

    <dl>
      <dt>CA fingerprint (SHA-256)</dt>
      <dd>
        <code class="fingerprint" data-testid="ca-fingerprint">{{
          enrollment().ca_fingerprint
        }}</code>
        <app-copy-button [text]="enrollment().ca_fingerprint" label="Copy CA fingerprint" />
      </dd>
      <dt>The token works until</dt>
      <dd data-testid="token-expiry">
        {{ enrollment().expires_at | date: 'yyyy-MM-dd HH:mm' }} ({{ left() }}), once.
      </dd>
    </dl>
  `,
  styles: `
    :host {
      display: block;
    }
    .warning {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .command {
      margin: 0 0 0.5rem;
      padding: 0.75rem;
      border-radius: var(--radius);
      background: var(--brand-bg);
      color: var(--brand-fg);
      font-family: var(--mono);
      font-size: 0.85rem;
      white-space: pre-wrap;
      word-break: break-all;
    }
    .fingerprint {
      display: block;
      margin-bottom: 0.25rem;
      font-family: var(--mono);
      word-break: break-all;
    }
    dt {
      margin-top: 0.75rem;
      font-weight: 600;
    }
    dd {
      margin: 0;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class InstallCommand {
  readonly hostname = input.required<string>();
  readonly enrollment = input.required<Enrollment>();

  protected readonly left = computed(() => {
    const ms = Date.parse(this.enrollment().expires_at) - Date.now();
    return ms > 0 ? `in ${formatSpan(ms)}` : 'already expired';
  });
}

export interface InstallDialogData {
  hostname: string;
  enrollment: Enrollment;
}

/** The install command in a dialog of its own (a new enrollment token for an existing node). */
@Component({
  selector: 'app-install-dialog',
  imports: [MatDialogModule, MatButtonModule, InstallCommand],
  template: `
    <h2 mat-dialog-title>Install the agent</h2>
    <mat-dialog-content>
      <app-install-command [hostname]="data.hostname" [enrollment]="data.enrollment" />
    </mat-dialog-content>
    <mat-dialog-actions align="end">
      <button mat-flat-button type="button" mat-dialog-close>Done</button>
    </mat-dialog-actions>
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class InstallDialog {
  protected readonly data = inject<InstallDialogData>(MAT_DIALOG_DATA);
}

/** How the install dialogs open: only "Done" closes them, so a stray click cannot lose the token. */
export const INSTALL_DIALOG_CONFIG = {
  width: '40rem',
  maxWidth: '95vw',
  disableClose: true,
  autoFocus: 'first-tabbable',
} as const;
