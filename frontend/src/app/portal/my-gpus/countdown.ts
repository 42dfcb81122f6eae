import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  computed,
  inject,
  input,
  signal,
} from '@angular/core';

import { formatSpan } from '../../shared/format';

/** Under this much time left the countdown warns: the mail that an assignment ends goes out 24 h before. */
export const SOON_MS = 24 * 60 * 60 * 1000;
const TICK_MS = 1000;

/**
 * Time left until `until`, updated every second: "in 2 d 3 h (Jan 2, 2030, 3:04 AM)"; "no expiry"
 * when there is none; in the warning style, and saying so in words, with less than a day left.
 */
@Component({
  selector: 'app-countdown',
  imports: [DatePipe],
  template: `
    @if (until(); as at) {
      <time [attr.datetime]="at" [class.soon]="soon()" data-testid="countdown">
        @if (left() > 0) {
          in {{ span() }}
          @if (soon()) {
            <strong>(less than a day left)</strong>
          }
        } @else {
          ending now
        }
      </time>
      <span class="at">({{ at | date: 'medium' }})</span>
    } @else {
      <span data-testid="countdown">no expiry</span>
    }
  `,
  styles: `
    :host {
      display: inline;
    }
    .soon {
      padding: 0.05rem 0.4rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .at {
      color: var(--muted);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Countdown {
  /** RFC 3339 time, or null for none. */
  readonly until = input<string | null | undefined>(null);

  private readonly now = signal(Date.now());

  protected readonly left = computed(() => {
    const until = this.until();
    return until ? Date.parse(until) - this.now() : Number.POSITIVE_INFINITY;
  });
  protected readonly soon = computed(() => this.left() < SOON_MS);
  protected readonly span = computed(() => formatSpan(this.left()));

  constructor() {
    const timer = setInterval(() => this.now.set(Date.now()), TICK_MS);
    inject(DestroyRef).onDestroy(() => clearInterval(timer));
  }
}
