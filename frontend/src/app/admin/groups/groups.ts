import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { firstValueFrom } from 'rxjs';

import { Api, GROUP_IN_USE, type Group, type User, codeOf, describeHttpError } from '../../api';
import { Confirm } from '../../shared/confirm';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { runRowAction } from '../../shared/row-action';
import { Toast } from '../../shared/toast';
import { GroupForm } from './group-form';

// The most the gateway sends in one page (shared/API.md, "Lists"); a lab has fewer groups and people.
const PAGE_LIMIT = 500;

/** A group's members as people read them (by email), and who else may join. */
export function membersOf(group: Group, users: readonly User[]) {
  const byId = new Map(users.map((u) => [u.id, u]));
  const members = group.member_ids
    .map((id) => ({ id, email: byId.get(id)?.email ?? id }))
    .sort((a, b) => a.email.localeCompare(b.email));
  const candidates = users
    .filter((u) => u.status !== 'disabled' && !group.member_ids.includes(u.id))
    .sort((a, b) => a.email.localeCompare(b.email));
  return { members, candidates };
}

/** `/admin/groups`: groups that share quotas and are charged for requests; their members. */
@Component({
  selector: 'app-groups',
  imports: [MatButtonModule, MatFormFieldModule, MatSelectModule, ListState],
  templateUrl: './groups.html',
  styleUrls: ['../../shared/list-page.scss', './groups.scss'],
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Groups {
  private readonly api = inject(Api);
  private readonly dialog = inject(MatDialog);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  protected readonly groups = poll(() =>
    this.api.get('/api/v1/groups', { query: { limit: PAGE_LIMIT } }),
  );
  protected readonly users = poll(
    () => this.api.get('/api/v1/users', { query: { limit: PAGE_LIMIT } }),
    0,
  );
  protected readonly cards = computed(() => {
    const users = this.users.value()?.items ?? [];
    return (this.groups.value()?.items ?? [])
      .slice()
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((group) => ({ group, ...membersOf(group, users) }));
  });
  /** The user picked in each group's "Add member" select, by group id. */
  protected readonly picked = signal<ReadonlyMap<string, string>>(new Map());
  protected readonly busy = signal<ReadonlySet<string>>(new Set());
  protected readonly actionError = signal<string | null>(null);

  protected pick(groupId: string, userId: string): void {
    this.picked.update((m) => new Map(m).set(groupId, userId));
  }

  protected async create(): Promise<void> {
    const ref = this.dialog.open<GroupForm, { group?: Group }, Group>(GroupForm, {
      data: {},
      maxWidth: '32rem',
    });
    const made = await firstValueFrom(ref.afterClosed());
    if (made) {
      this.toast.done(`Group ${made.name} created.`);
      this.groups.reload();
    }
  }

  protected async edit(group: Group): Promise<void> {
    const ref = this.dialog.open<GroupForm, { group?: Group }, Group>(GroupForm, {
      data: { group },
      maxWidth: '32rem',
    });
    const saved = await firstValueFrom(ref.afterClosed());
    if (saved) {
      this.toast.done(`Group ${saved.name} saved.`);
      this.groups.reload();
    }
  }

  protected async remove(group: Group): Promise<void> {
    const ok = await this.confirm.ask({
      title: `Delete the group ${group.name}?`,
      message: [
        'Its quota and its memberships go with it. Past usage charged to it stays in the usage reports.',
        'A group that open requests or active assignments are charged to cannot be deleted.',
      ],
      confirm: 'Delete group',
    });
    if (!ok) {
      return;
    }
    await this.run(group, async () => {
      await firstValueFrom(this.api.delete('/api/v1/groups/{id}', { path: { id: group.id } }));
      this.toast.done(`Group ${group.name} deleted.`);
    });
  }

  protected async addMember(group: Group, users: readonly User[]): Promise<void> {
    const userId = this.picked().get(group.id);
    const user = users.find((u) => u.id === userId);
    if (!user) {
      this.actionError.set(`${group.name}: choose someone to add first.`);
      return;
    }
    await this.run(group, async () => {
      await firstValueFrom(
        this.api.post('/api/v1/groups/{id}/members', {
          path: { id: group.id },
          body: { user_id: user.id },
        }),
      );
      this.picked.update((m) => {
        const next = new Map(m);
        next.delete(group.id);
        return next;
      });
      this.toast.done(`${user.email} is now in ${group.name}.`);
    });
  }

  protected async removeMember(group: Group, member: { id: string; email: string }) {
    const ok = await this.confirm.ask({
      title: `Remove ${member.email} from ${group.name}?`,
      message: 'Their requests can no longer be charged to this group.',
      confirm: 'Remove member',
    });
    if (!ok) {
      return;
    }
    await this.run(group, async () => {
      await firstValueFrom(
        this.api.delete('/api/v1/groups/{id}/members/{user_id}', {
          path: { id: group.id, user_id: member.id },
        }),
      );
      this.toast.done(`${member.email} left ${group.name}.`);
    });
  }

  private run(group: Group, action: () => Promise<void>): Promise<void> {
    const describe = (err: unknown) =>
      `${group.name}: ${codeOf(err) === GROUP_IN_USE ? 'open requests or active assignments are charged to this group, so it cannot be deleted yet.' : describeHttpError(err)}`;
    return runRowAction(
      {
        busy: this.busy,
        actionError: this.actionError,
        toast: this.toast,
        reload: () => this.groups.reload(),
      },
      group.id,
      describe,
      action,
    );
  }
}
