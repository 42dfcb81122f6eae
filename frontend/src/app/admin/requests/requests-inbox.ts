import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { firstValueFrom } from 'rxjs';

import {
  type GpuRequest,
  REQUEST_NOT_OPEN,
  type RequestStatus,
  SelfServiceApi,
  codeOf,
  describeHttpError,
} from '../../api';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { runRowAction } from '../../shared/row-action';
import { Toast } from '../../shared/toast';
import { statusWord } from '../../portal/requests/request-view';
import { DenyDialog } from './deny-dialog';

export type StatusFilter = RequestStatus | 'all';
export const STATUS_FILTERS: StatusFilter[] = [
  'all',
  'pending_approval',
  'queued',
  'granted',
  'denied',
  'cancelled',
];

/** The order of the inbox: what waits for an admin first, then the queue, then the rest; newest first within. */
const RANK: Record<RequestStatus, number> = {
  pending_approval: 0,
  queued: 1,
  granted: 2,
  denied: 3,
  cancelled: 4,
};

export function inboxOrder(items: readonly GpuRequest[]): GpuRequest[] {
  return [...items].sort(
    (a, b) => RANK[a.status] - RANK[b.status] || b.created_at.localeCompare(a.created_at),
  );
}

/** `/admin/requests`: the requests of everyone, those waiting for approval first; approve or deny. */
@Component({
  selector: 'app-requests-inbox',
  imports: [
    DatePipe,
    MatButtonModule,
    MatFormFieldModule,
    MatSelectModule,
    MatTableModule,
    ListState,
  ],
  templateUrl: './requests-inbox.html',
  styleUrl: '../../shared/list-page.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class RequestsInbox {
  private readonly selfService = inject(SelfServiceApi);
  private readonly dialog = inject(MatDialog);
  private readonly toast = inject(Toast);

  protected readonly filters = STATUS_FILTERS;
  protected readonly show = signal<StatusFilter>('all');
  // The actions before the note, which wraps: Approve and Deny stay in view at 1280 px.
  protected readonly columns = [
    'created',
    'who',
    'environment',
    'what',
    'status',
    'actions',
    'note',
  ];
  // Polled: requests arrive and the queue moves on their own.
  protected readonly requests = poll(() => {
    const status = this.show();
    return this.selfService.requests({ status: status === 'all' ? '' : status });
  });
  protected readonly rows = computed(() => inboxOrder(this.requests.value()?.items ?? []));
  protected readonly busy = signal<ReadonlySet<string>>(new Set());
  protected readonly actionError = signal<string | null>(null);
  protected readonly statusWord = statusWord;
  protected readonly trackById = (_: number, r: GpuRequest) => r.id;

  protected filterWord(f: StatusFilter): string {
    return f === 'all' ? 'all' : statusWord(f);
  }

  protected setShow(value: StatusFilter): void {
    this.show.set(value);
    this.requests.reload();
  }

  protected approve(r: GpuRequest): Promise<void> {
    return this.run(r, async () => {
      const done = await firstValueFrom(this.selfService.approve(r.id));
      this.toast.done(
        `Approved the request of ${r.user_email}: ${done.status === 'queued' ? 'it waits in the queue' : statusWord(done.status)}.`,
      );
    });
  }

  protected async deny(r: GpuRequest): Promise<void> {
    const ref = this.dialog.open<DenyDialog, GpuRequest, string>(DenyDialog, {
      data: r,
      maxWidth: '32rem',
    });
    const reason = await firstValueFrom(ref.afterClosed());
    if (!reason) {
      return;
    }
    await this.run(r, async () => {
      await firstValueFrom(this.selfService.deny(r.id, reason));
      this.toast.done(`Denied the request of ${r.user_email}.`);
    });
  }

  private run(r: GpuRequest, action: () => Promise<void>): Promise<void> {
    const describe = (err: unknown) =>
      `${r.user_email}: ${codeOf(err) === REQUEST_NOT_OPEN ? 'this request was decided or cancelled meanwhile.' : describeHttpError(err)}`;
    return runRowAction(
      {
        busy: this.busy,
        actionError: this.actionError,
        toast: this.toast,
        reload: () => this.requests.reload(),
      },
      r.id,
      describe,
      action,
    );
  }
}
