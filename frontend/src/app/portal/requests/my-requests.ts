import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  InjectionToken,
  computed,
  effect,
  inject,
  signal,
} from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatTableModule } from '@angular/material/table';
import { RouterLink } from '@angular/router';
import { firstValueFrom } from 'rxjs';

import {
  type GpuRequest,
  REQUEST_NOT_OPEN,
  SelfServiceApi,
  codeOf,
  describeHttpError,
  isOpen,
} from '../../api';
import { Confirm } from '../../shared/confirm';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { statusWord } from './request-view';

/** While a request is open its place in the queue moves: the page asks again this often (issue 13). */
export const OPEN_REFRESH_MS = new InjectionToken<number>('OPEN_REFRESH_MS', {
  factory: () => 5000,
});

/** `/requests` ("My requests"): the caller's requests, live while any is open, each open one cancellable. */
@Component({
  selector: 'app-my-requests',
  imports: [DatePipe, MatButtonModule, MatTableModule, RouterLink, ListState],
  template: `
    <h1>My requests</h1>
    <p class="lead">
      Your requests for GPUs and for more time. While one is open this page follows its place in the
      queue.
    </p>

    @if (actionError(); as message) {
      <p class="error" role="alert">{{ message }}</p>
    }

    <app-list-state what="your requests" [source]="requests" [empty]="!rows().length">
      <p empty data-testid="empty">No requests yet. <a routerLink="/request">Request GPUs</a></p>
      <div class="table-wrap">
        <table mat-table [dataSource]="rows()" [trackBy]="trackById">
          <ng-container matColumnDef="created">
            <th mat-header-cell *matHeaderCellDef scope="col">Asked</th>
            <td mat-cell *matCellDef="let r">
              <time [attr.datetime]="r.created_at">{{ r.created_at | date: 'medium' }}</time>
            </td>
          </ng-container>
          <ng-container matColumnDef="environment">
            <th mat-header-cell *matHeaderCellDef scope="col">Environment</th>
            <td mat-cell *matCellDef="let r">
              {{ r.environment_name }}
              @if (r.kind === 'extension') {
                <span class="muted">(more time)</span>
              }
            </td>
          </ng-container>
          <ng-container matColumnDef="what">
            <th mat-header-cell *matHeaderCellDef scope="col">GPUs × hours</th>
            <td mat-cell *matCellDef="let r">{{ r.gpus }} × {{ r.hours }} h</td>
          </ng-container>
          <ng-container matColumnDef="status">
            <th mat-header-cell *matHeaderCellDef scope="col">Status</th>
            <td mat-cell *matCellDef="let r">
              <span class="badge" [attr.data-status]="r.status" data-testid="request-status">{{
                statusWord(r.status)
              }}</span>
            </td>
          </ng-container>
          <ng-container matColumnDef="detail">
            <th mat-header-cell *matHeaderCellDef scope="col">Details</th>
            <td mat-cell *matCellDef="let r" class="wrap">
              @switch (r.status) {
                @case ('queued') {
                  Position {{ r.position }},
                  @if (r.estimated_start_at) {
                    estimated start {{ r.estimated_start_at | date: 'medium' }}
                  } @else {
                    start unknown
                  }
                }
                @case ('pending_approval') {
                  An admin decides.
                }
                @case ('denied') {
                  Reason: {{ r.reason || 'none given' }}
                }
                @case ('granted') {
                  @if (r.assignment_id) {
                    <a [routerLink]="['/assignments', r.assignment_id]">See it on My GPUs</a>
                  }
                }
              }
            </td>
          </ng-container>
          <ng-container matColumnDef="actions">
            <th mat-header-cell *matHeaderCellDef scope="col">Actions</th>
            <td mat-cell *matCellDef="let r">
              @if (isOpen(r)) {
                <button
                  mat-stroked-button
                  type="button"
                  class="danger"
                  [disabled]="busy().has(r.id)"
                  (click)="cancel(r)"
                >
                  Cancel<span class="visually-hidden">
                    the request in {{ r.environment_name }} of
                    {{ r.created_at | date: 'medium' }}</span
                  >
                </button>
              }
            </td>
          </ng-container>
          <tr mat-header-row *matHeaderRowDef="columns"></tr>
          <tr mat-row *matRowDef="let r; columns: columns" [attr.data-request-id]="r.id"></tr>
        </table>
      </div>
    </app-list-state>
  `,
  styleUrl: '../../shared/list-page.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class MyRequests {
  private readonly selfService = inject(SelfServiceApi);
  private readonly confirm = inject(Confirm);
  private readonly toast = inject(Toast);

  protected readonly columns = ['created', 'environment', 'what', 'status', 'detail', 'actions'];
  // Loaded once here; the effect below asks again every 5 s while any request is open.
  protected readonly requests = poll(() => this.selfService.myRequests(), 0);
  protected readonly rows = computed(() => this.requests.value()?.items ?? []);
  protected readonly anyOpen = computed(() => this.rows().some(isOpen));
  protected readonly busy = signal<ReadonlySet<string>>(new Set());
  protected readonly actionError = signal<string | null>(null);
  protected readonly isOpen = isOpen;
  protected readonly statusWord = statusWord;
  protected readonly trackById = (_: number, r: GpuRequest) => r.id;

  constructor() {
    const every = inject(OPEN_REFRESH_MS);
    let timer: ReturnType<typeof setTimeout> | undefined;
    inject(DestroyRef).onDestroy(() => clearTimeout(timer));
    effect(() => {
      // After each answer (updatedAt moves): one more in 5 s while something can still change.
      this.requests.updatedAt();
      this.requests.error();
      clearTimeout(timer);
      if (this.anyOpen()) {
        timer = setTimeout(() => this.requests.reload(), every);
      }
    });
  }

  protected async cancel(r: GpuRequest): Promise<void> {
    const ok = await this.confirm.ask({
      title: `Cancel your request in ${r.environment_name}?`,
      message: `It asks for ${r.gpus} GPU${r.gpus === 1 ? '' : 's'} for ${r.hours} hours. A cancelled request cannot be opened again.`,
      confirm: 'Cancel request',
      cancel: 'Keep request',
    });
    if (!ok) {
      return;
    }
    this.busy.update((ids) => new Set(ids).add(r.id));
    this.actionError.set(null);
    try {
      await firstValueFrom(this.selfService.cancel(r.id));
      this.toast.done(`Request in ${r.environment_name} cancelled.`);
    } catch (err) {
      const message =
        codeOf(err) === REQUEST_NOT_OPEN
          ? 'That request was decided meanwhile, so it can no longer be cancelled.'
          : describeHttpError(err);
      this.actionError.set(message);
      this.toast.failed(message);
    } finally {
      this.busy.update((ids) => {
        const next = new Set(ids);
        next.delete(r.id);
        return next;
      });
      this.requests.reload();
    }
  }
}
