import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';

import { Api, SshKey, describeHttpError } from '../../api';
import { Auth } from '../../core/auth';
import { Confirm } from '../../shared/confirm';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { KeyForm } from './key-form';
import { KeyHowto } from './key-howto';

/** `/keys`: how to make an SSH key, adding one, and the caller's keys with "Delete key ...". */
@Component({
  selector: 'app-keys',
  imports: [DatePipe, MatButtonModule, ListState, KeyForm, KeyHowto],
  template: `
    <h1>SSH keys</h1>
    <p class="lead">
      The nodes where you get GPUs let you in with these keys. Add the public key of each computer
      you connect from.
    </p>
    <div class="layout">
      <app-key-howto />
      <div class="card">
        <app-key-form (keyAdded)="changed()" />
      </div>
    </div>

    <section aria-labelledby="your-keys-title">
      <h2 id="your-keys-title">Your keys</h2>
      <app-list-state what="your SSH keys" [source]="keys" [empty]="!items().length">
        <p empty data-testid="no-keys">No keys yet: add one above to get access to GPUs.</p>
        <ul class="keys">
          @for (key of items(); track key.id) {
            <li class="key" [attr.data-key-id]="key.id">
              <div class="key__facts">
                <p class="key__name">{{ key.comment || 'No comment' }}</p>
                <p><span class="label">Type:</span> {{ key.type }}</p>
                <p>
                  <span class="label">Fingerprint: </span>
                  <code class="key__fingerprint">{{ key.fingerprint }}</code>
                </p>
                <p>
                  <span class="label">Added: </span>
                  <time [attr.datetime]="key.created_at">{{
                    key.created_at | date: 'mediumDate'
                  }}</time>
                </p>
              </div>
              <button
                mat-stroked-button
                type="button"
                class="key__delete"
                [disabled]="deleting() === key.id"
                (click)="remove(key)"
              >
                Delete key {{ nameOf(key) }}
              </button>
            </li>
          }
        </ul>
      </app-list-state>
    </section>
  `,
  styles: `
    .layout {
      display: grid;
      grid-template-columns: minmax(0, 1fr) minmax(0, 1fr);
      gap: 1rem;
      align-items: start;
      margin-bottom: 2rem;
    }
    @media (max-width: 900px) {
      .layout {
        grid-template-columns: minmax(0, 1fr);
      }
    }
    .card {
      padding: 1rem 1.25rem;
      background: var(--surface);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    h2 {
      font-size: 1.2rem;
    }
    .keys {
      margin: 0;
      padding: 0;
      list-style: none;
      display: grid;
      gap: 0.75rem;
    }
    .key {
      display: flex;
      flex-wrap: wrap;
      justify-content: space-between;
      align-items: center;
      gap: 0.75rem;
      padding: 0.75rem 1rem;
      background: var(--surface);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    .key__facts {
      min-width: 0;
      flex: 1 1 20rem;
    }
    .key__facts p {
      margin: 0;
    }
    .key__name {
      font-weight: 600;
    }
    .label {
      color: var(--muted);
    }
    .key__fingerprint {
      font-family: var(--mono);
      overflow-wrap: anywhere;
    }
    .key__delete {
      max-width: 100%;
      overflow-wrap: anywhere;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Keys {
  private readonly api = inject(Api);
  private readonly auth = inject(Auth);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  // Keys change only through this page: load once, and again after each change.
  protected readonly keys = poll(() => this.api.get('/api/v1/me/ssh-keys'), 0);
  protected readonly items = computed(() => this.keys.value()?.items ?? []);
  protected readonly deleting = signal<string | null>(null);

  /** The key's name in its button: its comment, or its fingerprint when that does not tell it apart. */
  protected nameOf(key: SshKey): string {
    const comment = key.comment.trim();
    const shared = this.items().some(
      (other) => other.id !== key.id && other.comment.trim() === comment,
    );
    return comment && !shared ? comment : key.fingerprint;
  }

  protected async remove(key: SshKey): Promise<void> {
    const only = this.items().length === 1;
    const ok = await this.confirm.ask({
      title: `Delete key ${this.nameOf(key)}?`,
      message: [
        `${key.type} ${key.fingerprint}`,
        'Nodes where you have GPUs stop accepting this key once they pick up the change.',
        ...(only
          ? [
              'It is your only key: until you add another, you cannot reach your GPUs, and admins cannot give you new ones.',
            ]
          : []),
      ],
      confirm: 'Delete key',
    });
    if (!ok) {
      return;
    }
    this.deleting.set(key.id);
    this.api.delete('/api/v1/me/ssh-keys/{id}', { path: { id: key.id } }).subscribe({
      next: () => {
        this.deleting.set(null);
        this.toast.done('Key deleted.');
        this.changed();
      },
      error: (err: unknown) => {
        this.deleting.set(null);
        this.toast.failed(`The key was not deleted. ${describeHttpError(err)}`);
        this.keys.reload();
      },
    });
  }

  /** After a key was added or deleted: the list, and the user's has_ssh_key, as the server has them. */
  protected changed(): void {
    this.keys.reload();
    this.api.get('/api/v1/auth/me').subscribe({
      next: (user) => this.auth.refresh(user),
      // A 401 is handled by the session interceptor; otherwise the next page load corrects it.
      error: () => undefined,
    });
  }
}
