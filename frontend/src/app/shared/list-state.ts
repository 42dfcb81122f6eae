import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, input, output } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatProgressSpinnerModule } from '@angular/material/progress-spinner';

import { Polled } from './polling';

/**
 * The loading, error and empty states of a list, around the list itself (projected content). A
 * polled list (shared/polling.ts) hands over its source, which brings everything but `empty`:
 *
 *   <app-list-state what="nodes" [source]="nodes" [empty]="!items().length">
 *     <p empty>No nodes yet. Add one with "Add node".</p>
 *     <table>...</table>
 *   </app-list-state>
 *
 * A refresh that fails while a list is shown keeps the list and says so above it.
 */
@Component({
  selector: 'app-list-state',
  imports: [DatePipe, MatButtonModule, MatProgressSpinnerModule],
  template: `
    @if (isLoading()) {
      <div class="state" role="status">
        <mat-progress-spinner mode="indeterminate" diameter="24" aria-hidden="true" />
        <span>Loading {{ what() }}…</span>
      </div>
    } @else if (failure() && !shown()) {
      <div class="state state--error" role="alert">
        <span>Could not load {{ what() }}: {{ failure() }}</span>
        <button mat-stroked-button type="button" (click)="tryAgain()">Try again</button>
      </div>
    } @else {
      @if (failure()) {
        <div class="stale" role="alert">
          Could not refresh {{ what() }}: {{ failure() }}
          @if (lastUpdate(); as at) {
            Showing what the server said at {{ at | date: 'HH:mm:ss' }}.
          }
        </div>
      }
      @if (empty()) {
        <div class="state state--empty"><ng-content select="[empty]" /></div>
      } @else {
        <ng-content />
      }
    }
  `,
  styles: `
    :host {
      display: block;
    }
    .state {
      display: flex;
      align-items: center;
      flex-wrap: wrap;
      gap: 0.75rem;
      padding: 1.25rem;
      border: 1px dashed var(--border);
      border-radius: var(--radius);
      background: var(--surface);
      color: var(--muted);
    }
    .state--error {
      border-style: solid;
      border-color: var(--bad-fg);
      color: var(--bad-fg);
      background: var(--bad-bg);
    }
    .state--empty {
      color: var(--text);
    }
    .stale {
      margin-bottom: 0.75rem;
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class ListState {
  /** What the list holds, in words: "nodes", "your SSH keys". */
  readonly what = input.required<string>();
  /** A polled list: its loading, error, value and reload stand in for the inputs below. */
  readonly source = input<Polled<unknown> | null>(null);
  readonly loading = input(false);
  readonly error = input<string | null>(null);
  readonly empty = input(false);
  /** True when a value was received before: an error then keeps the list on screen. */
  readonly hasValue = input(false);
  readonly updatedAt = input<Date | null>(null);
  readonly retry = output<void>();

  protected readonly isLoading = computed(() => this.source()?.loading() ?? this.loading());
  protected readonly failure = computed(() => {
    const source = this.source();
    return source ? source.error() : this.error();
  });
  protected readonly shown = computed(() => {
    const source = this.source();
    return source ? source.value() !== undefined : this.hasValue();
  });
  protected readonly lastUpdate = computed(() => {
    const source = this.source();
    return source ? source.updatedAt() : this.updatedAt();
  });

  protected tryAgain(): void {
    const source = this.source();
    if (source) {
      source.reload();
    } else {
      this.retry.emit();
    }
  }
}
