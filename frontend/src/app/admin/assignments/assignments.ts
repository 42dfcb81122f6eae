import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  Injector,
  afterNextRender,
  computed,
  inject,
  signal,
  viewChild,
} from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { firstValueFrom } from 'rxjs';

import { Api } from '../../api';
import { Confirm } from '../../shared/confirm';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { AssignmentForm } from './assignment-form';
import {
  AssignmentFilters,
  AssignmentRow,
  StatusFilter,
  assignmentRow,
  assignmentsQuery,
  byId,
  revokeError,
} from './assignment-view';

// The most the gateway sends in one page (shared/API.md, "Lists").
const PAGE_LIMIT = 500;
// Users, Environments and nodes change rarely: their names are asked for again this often.
const NAMES_MS = 30_000;

/** `/admin/assignments`: who holds which GPUs where; create and revoke assignments. */
@Component({
  selector: 'app-assignments',
  imports: [
    DatePipe,
    MatButtonModule,
    MatFormFieldModule,
    MatSelectModule,
    MatTableModule,
    ListState,
    AssignmentForm,
  ],
  templateUrl: './assignments.html',
  styleUrl: './assignments.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Assignments {
  private readonly api = inject(Api);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  private readonly injector = inject(Injector);
  // `read`: the reference on a Material button is the button component, not its element.
  private readonly newButton = viewChild('newButton', { read: ElementRef<HTMLButtonElement> });

  protected readonly columns = [
    'user',
    'environment',
    'node',
    'gpus',
    'cpus',
    'ram',
    'status',
    'nodeState',
    'created',
    'expires',
    'actions',
  ];
  protected readonly statusOptions: StatusFilter[] = ['active', 'revoked', 'expired', 'all'];
  protected readonly filters = signal<AssignmentFilters>({
    userId: '',
    environmentId: '',
    nodeId: '',
    status: 'active',
  });

  // Polled: node state, expiry and revocations elsewhere change the list on their own.
  protected readonly assignments = poll(() =>
    this.api.get('/api/v1/assignments', { query: assignmentsQuery(this.filters(), PAGE_LIMIT) }),
  );
  protected readonly users = poll(
    () => this.api.get('/api/v1/users', { query: { limit: PAGE_LIMIT } }),
    NAMES_MS,
  );
  protected readonly environments = poll(
    () => this.api.get('/api/v1/environments', { query: { limit: PAGE_LIMIT } }),
    NAMES_MS,
  );
  protected readonly nodes = poll(
    () => this.api.get('/api/v1/nodes', { query: { limit: PAGE_LIMIT } }),
    NAMES_MS,
  );

  protected readonly userList = computed(() => this.users.value()?.items ?? []);
  protected readonly environmentList = computed(() => this.environments.value()?.items ?? []);
  protected readonly nodeList = computed(() => this.nodes.value()?.items ?? []);
  protected readonly sortedUsers = computed(() =>
    [...this.userList()].sort((a, b) => a.email.localeCompare(b.email)),
  );
  protected readonly sortedNodes = computed(() =>
    [...this.nodeList()].sort((a, b) => a.hostname.localeCompare(b.hostname)),
  );

  protected readonly rows = computed(() => {
    const names = {
      users: byId(this.userList()),
      environments: byId(this.environmentList()),
      nodes: byId(this.nodeList()),
    };
    return (this.assignments.value()?.items ?? []).map((a) => assignmentRow(a, names));
  });
  protected readonly truncated = computed(() => !!this.assignments.value()?.next_cursor);
  /** Why a list of names could not be loaded: the form and the filters need them. */
  protected readonly namesError = computed(() => {
    const failed = [
      ['users', this.users.error()],
      ['Environments', this.environments.error()],
      ['nodes', this.nodes.error()],
    ].filter(([, error]) => error);
    return failed.length
      ? failed.map(([what, error]) => `Could not load ${what}: ${error}`).join(' ')
      : null;
  });

  protected readonly creating = signal(false);
  protected readonly busy = signal<ReadonlySet<string>>(new Set());
  protected readonly actionError = signal<string | null>(null);

  protected readonly trackById = (_: number, row: AssignmentRow) => row.a.id;

  protected setFilter(change: Partial<AssignmentFilters>): void {
    this.filters.update((current) => ({ ...current, ...change }));
    this.assignments.reload();
  }

  protected created(): void {
    this.closeForm();
    this.assignments.reload();
  }

  /** Hides the form, and brings the keyboard back to the button that opened it. */
  protected closeForm(): void {
    this.creating.set(false);
    afterNextRender(() => this.newButton()?.nativeElement.focus(), { injector: this.injector });
  }

  protected async revoke(row: AssignmentRow): Promise<void> {
    const ok = await this.confirm.ask({
      title: `Revoke ${row.user}'s GPUs on ${row.node}?`,
      message: 'The agent removes their access at its next heartbeat.',
      confirm: 'Revoke assignment',
    });
    if (!ok) {
      return;
    }
    const id = row.a.id;
    this.busy.update((ids) => new Set(ids).add(id));
    this.actionError.set(null);
    try {
      await firstValueFrom(this.api.post('/api/v1/assignments/{id}/revoke', { path: { id } }));
      this.toast.done(
        `Revoked ${row.user} on ${row.node}: access ends at the node's next heartbeat.`,
      );
    } catch (err) {
      const message = `${row.user} on ${row.node}: ${revokeError(err)}`;
      this.actionError.set(message);
      this.toast.failed(message);
    } finally {
      this.busy.update((ids) => {
        const next = new Set(ids);
        next.delete(id);
        return next;
      });
      this.assignments.reload();
    }
  }
}
