import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  Injector,
  afterNextRender,
  effect,
  inject,
  input,
  output,
  signal,
  untracked,
  viewChild,
} from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { firstValueFrom } from 'rxjs';

import {
  type Assignment,
  OTHERS_WAITING,
  QUOTA_EXCEEDED,
  SelfServiceApi,
  codeOf,
  describeHttpError,
  isRequest,
  problemOf,
} from '../../api';
import { Confirm } from '../../shared/confirm';

/** What the last extend or release came to, as the card shows it. */
export type Outcome =
  | { kind: 'extended'; expiresAt: string | null }
  | { kind: 'sent' }
  | { kind: 'error'; message: string };

/** Why an extension was refused, in words; a quota's detail is shown as the server wrote it. */
export function extendError(err: unknown): string {
  switch (codeOf(err)) {
    case QUOTA_EXCEEDED:
      return problemOf(err)?.detail ?? describeHttpError(err);
    case OTHERS_WAITING:
      return 'Others are waiting for these GPUs, so this assignment cannot be extended. Request GPUs again once it ends.';
    default:
      // too_long and the rest: the server's sentence says the limit.
      return describeHttpError(err);
  }
}

/** On an active assignment: ask for more hours, or give the GPUs back before the end. */
@Component({
  selector: 'app-extend-release',
  imports: [DatePipe, ReactiveFormsModule, MatButtonModule, MatFormFieldModule, MatInputModule],
  template: `
    @let a = assignment();
    <form class="extend" [formGroup]="form" (ngSubmit)="extend()" novalidate>
      <mat-form-field subscriptSizing="dynamic" class="hours">
        <mat-label>Extra hours</mat-label>
        <input
          #hoursInput
          matInput
          type="number"
          min="1"
          step="1"
          formControlName="hours"
          [attr.data-testid]="'extra-hours-' + a.id"
        />
        @if (hours.invalid && hours.touched) {
          <mat-error>Enter a whole number of hours, at least 1.</mat-error>
        }
      </mat-form-field>
      <button mat-stroked-button type="submit" [disabled]="busy()">
        {{ busy() === 'extend' ? 'Extending…' : 'Extend' }}
      </button>
      <button
        mat-stroked-button
        type="button"
        class="danger"
        [disabled]="busy()"
        (click)="release()"
      >
        {{ busy() === 'release' ? 'Releasing…' : 'Release' }}
      </button>
    </form>
    @if (outcome(); as o) {
      @switch (o.kind) {
        @case ('extended') {
          <p class="outcome outcome--ok" role="status">
            Extended.
            @if (o.expiresAt) {
              It now ends {{ o.expiresAt | date: 'medium' }}.
            }
          </p>
        }
        @case ('sent') {
          <p class="outcome outcome--ok" role="status">
            Sent to an admin for approval. See My requests for the answer.
          </p>
        }
        @case ('error') {
          <p class="outcome outcome--bad" role="alert">{{ o.message }}</p>
        }
      }
    }
  `,
  styles: `
    .extend {
      display: flex;
      flex-wrap: wrap;
      align-items: flex-start;
      gap: 0.5rem 0.75rem;
      margin-top: 1rem;
    }
    .hours {
      width: 9rem;
    }
    button {
      margin-top: 0.5rem;
    }
    .danger {
      --mat-button-outlined-label-text-color: var(--bad-fg);
    }
    .outcome {
      margin: 0.5rem 0 0;
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
    }
    .outcome--ok {
      background: var(--ok-bg);
      color: var(--ok-fg);
    }
    .outcome--bad {
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class ExtendRelease {
  private readonly selfService = inject(SelfServiceApi);
  private readonly confirm = inject(Confirm);
  private readonly injector = inject(Injector);

  readonly assignment = input.required<Assignment>();
  /** Opened from the expiry mail's link (`?extend=1`): the hours field takes the focus. */
  readonly focusExtend = input(false);
  /** The assignment changed on the server: the list should be asked again. */
  readonly changed = output<void>();

  // One hour unless changed; back to one after an extension (an emptied field would show as an error
  // once the form was submitted).
  protected readonly form = new FormGroup({
    hours: new FormControl<number | null>(1, [
      Validators.required,
      Validators.min(1),
      (c) => (c.value === null || Number.isInteger(c.value) ? null : { whole: true }),
    ]),
  });
  protected readonly hours = this.form.controls.hours;
  protected readonly busy = signal<'extend' | 'release' | null>(null);
  protected readonly outcome = signal<Outcome | null>(null);
  private readonly hoursInput = viewChild.required<ElementRef<HTMLInputElement>>('hoursInput');

  constructor() {
    let focused = false;
    effect(() => {
      if (this.focusExtend() && !focused) {
        focused = true;
        untracked(() =>
          afterNextRender(() => this.hoursInput().nativeElement.focus(), {
            injector: this.injector,
          }),
        );
      }
    });
  }

  async extend(): Promise<void> {
    if (this.busy()) {
      return;
    }
    if (this.hours.invalid) {
      this.hours.markAsTouched();
      return;
    }
    this.busy.set('extend');
    this.outcome.set(null);
    try {
      const reply = await firstValueFrom(
        this.selfService.extend(this.assignment().id, this.hours.value!),
      );
      this.outcome.set(
        isRequest(reply) ? { kind: 'sent' } : { kind: 'extended', expiresAt: reply.expires_at },
      );
      this.hours.reset(1);
      this.changed.emit();
    } catch (err) {
      this.outcome.set({ kind: 'error', message: extendError(err) });
    } finally {
      this.busy.set(null);
    }
  }

  async release(): Promise<void> {
    const a = this.assignment();
    const ok = await this.confirm.ask({
      title: `Release the GPUs on ${a.node_hostname}?`,
      message: [
        `Your access to ${a.node_hostname} (${a.environment_name}) ends now, and the GPUs go to whoever waits for them.`,
        'Save your work on the node first.',
      ],
      confirm: 'Release GPUs',
      cancel: 'Keep them',
    });
    if (!ok) {
      return;
    }
    this.busy.set('release');
    this.outcome.set(null);
    try {
      await firstValueFrom(this.selfService.release(a.id));
      this.changed.emit();
    } catch (err) {
      this.outcome.set({ kind: 'error', message: describeHttpError(err) });
    } finally {
      this.busy.set(null);
    }
  }
}
