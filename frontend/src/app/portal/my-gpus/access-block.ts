import { ChangeDetectionStrategy, Component, computed, input, output } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatProgressSpinnerModule } from '@angular/material/progress-spinner';

import type { Access } from '../../api';
import { CopyButton } from '../../shared/copy-button';
import { netbirdCommand, sshAlias } from './assignment-view';
import { Countdown } from './countdown';

/** The access of one assignment, asked for once (a NetBird key is the assignment's one key until used or expired). */
export type AccessState =
  | { kind: 'loading' }
  | { kind: 'ready'; access: Access }
  // The node has not set the access up yet (409 access_not_ready): asked again at each refresh.
  | { kind: 'not-ready'; message: string }
  | { kind: 'error'; message: string };

/** How to reach the node: an SSH config and command, or a NetBird setup key and command. */
@Component({
  selector: 'app-access-block',
  imports: [MatButtonModule, MatProgressSpinnerModule, CopyButton, Countdown],
  template: `
    @let s = state();
    <!-- A div, not a region: every card has one, and landmarks must have unique names. -->
    <div class="access" [attr.aria-busy]="s.kind === 'loading'">
      <h3>How to connect</h3>
      @switch (s.kind) {
        @case ('loading') {
          <p class="pending" role="status">
            <mat-progress-spinner mode="indeterminate" diameter="18" aria-hidden="true" />
            Getting your access details…
          </p>
        }
        @case ('not-ready') {
          <p class="pending" role="status">
            <mat-progress-spinner mode="indeterminate" diameter="18" aria-hidden="true" />
            Your access is still being set up on the node. {{ s.message }} This page checks again by
            itself.
          </p>
        }
        @case ('error') {
          <div class="failure" role="alert">
            <p>Could not get your access details. {{ s.message }}</p>
            <button mat-stroked-button type="button" (click)="retry.emit()">
              Get access details for {{ host() }} again
            </button>
          </div>
        }
        @case ('ready') {
          @let a = s.access;
          @if (a.provider === 'netbird') {
            <p>
              This node is reached through the lab's NetBird network. Install NetBird (netbird.io),
              then join with this setup key:
            </p>
            <p class="label">Setup key</p>
            <pre data-testid="setup-key">{{ a.setup_key }}</pre>
            <app-copy-button [text]="a.setup_key ?? ''" label="Copy setup key" />
            <p class="label">Command</p>
            <pre data-testid="netbird-command">{{ netbirdCommand() }}</pre>
            <app-copy-button [text]="netbirdCommand()" label="Copy NetBird command" />
            <p>
              @if (a.expires_at) {
                The setup key expires <app-countdown [until]="a.expires_at" />.
              } @else {
                The setup key does not expire.
              }
              Once joined, connect over SSH as <code>{{ user() }}</code>.
            </p>
          } @else {
            <p>
              Add this to your SSH config (<code>~/.ssh/config</code>; on Windows
              <code>C:\\Users\\&lt;you&gt;\\.ssh\\config</code>):
            </p>
            <pre data-testid="ssh-config">{{ a.ssh_config }}</pre>
            <app-copy-button [text]="a.ssh_config ?? ''" label="Copy SSH config" />
            @if (alias(); as name) {
              <p>
                Then connect with <code>ssh {{ name }}</code
                >. Or, without the config, run:
              </p>
            } @else {
              <p>Or connect without the config:</p>
            }
            <pre data-testid="ssh-command">{{ a.ssh_command }}</pre>
            <app-copy-button [text]="a.ssh_command ?? ''" label="Copy SSH command" />
          }
        }
      }
    </div>
  `,
  styles: `
    .access {
      margin-top: 1rem;
      padding-top: 0.75rem;
      border-top: 1px solid var(--border);
    }
    h3 {
      margin: 0 0 0.5rem;
      font-size: 1rem;
    }
    p {
      margin: 0.5rem 0;
    }
    .label {
      margin-bottom: 0.25rem;
      font-weight: 600;
    }
    pre {
      margin: 0 0 0.5rem;
      padding: 0.5rem 0.75rem;
      /* Wrapped, not scrolled: nothing is hidden at 390 px, and no scroll area needs the keyboard. */
      white-space: pre-wrap;
      overflow-wrap: anywhere;
      font-family: var(--mono);
      font-size: 0.85rem;
      background: var(--bg);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    code {
      font-family: var(--mono);
      overflow-wrap: anywhere;
    }
    .pending {
      display: flex;
      align-items: center;
      gap: 0.5rem;
      color: var(--muted);
    }
    .failure {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AccessBlock {
  readonly state = input.required<AccessState>();
  /** The node's name, for the retry button's words. */
  readonly host = input.required<string>();
  /** The Linux account on the node. */
  readonly user = input.required<string>();
  readonly retry = output<void>();

  private readonly access = computed(() => {
    const s = this.state();
    return s.kind === 'ready' ? s.access : null;
  });
  protected readonly netbirdCommand = computed(() => {
    const access = this.access();
    return access ? netbirdCommand(access) : '';
  });
  protected readonly alias = computed(() => sshAlias(this.access()?.ssh_config));
}
