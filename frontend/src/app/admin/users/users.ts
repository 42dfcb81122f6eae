import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelect, MatSelectChange, MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { firstValueFrom } from 'rxjs';

import { Api, User, UserChange, describeHttpError } from '../../api';
import { Auth } from '../../core/auth';
import { Confirm } from '../../shared/confirm';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { InviteForm } from './invite-form';
import { ShowFilter, deliveryText, keyText, nameText } from './user-view';

// The most the gateway sends in one page (shared/API.md, "Lists"); a lab has fewer people.
const PAGE_LIMIT = 500;

/** `/admin/users`: invite people, see where their invite stands, change roles, disable and enable. */
@Component({
  selector: 'app-users',
  imports: [
    DatePipe,
    MatButtonModule,
    MatFormFieldModule,
    MatSelectModule,
    MatTableModule,
    ListState,
    InviteForm,
  ],
  templateUrl: './users.html',
  styleUrl: './users.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Users {
  private readonly api = inject(Api);
  private readonly auth = inject(Auth);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  protected readonly columns = ['email', 'name', 'role', 'status', 'key', 'invite', 'actions'];
  protected readonly showOptions: ShowFilter[] = ['all', 'active', 'invited', 'disabled'];
  protected readonly show = signal<ShowFilter>('all');

  // Polled: invite delivery (queued, sent, failed) changes on its own.
  protected readonly users = poll(() => {
    const show = this.show();
    return this.api.get('/api/v1/users', {
      query: { limit: PAGE_LIMIT, status: show === 'all' ? undefined : show },
    });
  });

  protected readonly rows = computed(() => {
    const now = Date.now();
    const me = this.auth.user()?.id;
    return (this.users.value()?.items ?? []).map((user) => ({
      user,
      name: nameText(user),
      key: keyText(user),
      delivery: deliveryText(user, now),
      isMe: user.id === me,
    }));
  });
  protected readonly truncated = computed(() => !!this.users.value()?.next_cursor);

  /** Ids of the users with a change in flight: their controls wait for the answer. */
  protected readonly busy = signal<ReadonlySet<string>>(new Set());
  /** Why the last change was refused, near the list (also in a toast). */
  protected readonly actionError = signal<string | null>(null);

  protected readonly trackById = (_: number, row: { user: User }) => row.user.id;

  protected setShow(value: ShowFilter): void {
    this.show.set(value);
    this.users.reload();
  }

  protected async changeRole(user: User, event: MatSelectChange<User['role']>): Promise<void> {
    const role = event.value;
    const done = await this.change(
      user,
      { role },
      `${user.email} is now ${article(role)} ${role}.`,
    );
    if (!done) {
      // The server kept the old role: the select shows what the server says, not what was picked.
      (event.source as MatSelect).value = user.role;
    }
  }

  protected async disable(user: User, isMe: boolean): Promise<void> {
    const message = ['Their sessions end at once and their active assignments end.'];
    if (isMe) {
      message.push('This is you: you will be signed out.');
    }
    const ok = await this.confirm.ask({
      title: `Disable ${user.email}?`,
      message,
      confirm: 'Disable user',
    });
    if (ok) {
      await this.change(user, { status: 'disabled' }, `${user.email} is disabled.`);
    }
  }

  protected async enable(user: User): Promise<void> {
    await this.change(
      user,
      { status: 'active' },
      `${user.email} is enabled again. They sign in anew: their old sessions stay ended.`,
    );
  }

  /** Invites an invited user again: a new link, the old one stops working. */
  protected async resend(user: User): Promise<void> {
    await this.run(user, async () => {
      await firstValueFrom(
        this.api.post('/api/v1/users/invites', { body: { email: user.email, role: user.role } }),
      );
      this.toast.done(`Invite sent to ${user.email}.`);
    });
  }

  private change(user: User, body: UserChange, success: string): Promise<boolean> {
    return this.run(user, async () => {
      await firstValueFrom(this.api.patch('/api/v1/users/{id}', { path: { id: user.id }, body }));
      this.toast.done(success);
    });
  }

  /** Runs one change for a user, says how it went, and shows what the server now says. */
  private async run(user: User, action: () => Promise<void>): Promise<boolean> {
    this.busy.update((ids) => new Set(ids).add(user.id));
    this.actionError.set(null);
    try {
      await action();
      return true;
    } catch (err) {
      const message = `${user.email}: ${describeHttpError(err)}`;
      this.actionError.set(message);
      this.toast.failed(message);
      return false;
    } finally {
      this.busy.update((ids) => {
        const next = new Set(ids);
        next.delete(user.id);
        return next;
      });
      this.users.reload();
    }
  }
}

function article(role: User['role']): string {
  return role === 'admin' ? 'an' : 'a';
}
