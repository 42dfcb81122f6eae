import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import {
  EMPTY,
  Observable,
  Subject,
  catchError,
  expand,
  map,
  of,
  startWith,
  switchMap,
} from 'rxjs';

import { Api, AuditVerification, describeHttpError } from '../../api';

export type ChainState =
  | { kind: 'checking'; checked: number }
  | { kind: 'valid'; checked: number; at: string }
  | { kind: 'broken'; id: string; problem: string; checked: number; at: string }
  | { kind: 'error'; message: string };

const PROBLEMS: Record<NonNullable<AuditVerification['problem']>, string> = {
  row_altered: 'the entry was changed after it was written (it no longer matches its own hash)',
  chain_broken:
    'it does not link to the entry before it (an entry before it was removed or inserted, or its link rewritten)',
};

/** What one reply of GET /api/v1/audit-log/verify says about the chain. */
export function chainState(v: AuditVerification): ChainState {
  if (v.valid === true) {
    return { kind: 'valid', checked: v.checked, at: v.checked_at };
  }
  if (v.valid === false) {
    return {
      kind: 'broken',
      id: v.first_bad_id ?? 'unknown',
      problem: v.problem ? PROBLEMS[v.problem] : 'it does not match its hash',
      checked: v.checked,
      at: v.checked_at,
    };
  }
  if (!v.next_cursor) {
    return {
      kind: 'error',
      message: 'The server stopped before the end and gave no way to go on.',
    };
  }
  return { kind: 'checking', checked: v.checked };
}

/**
 * The whole check: the gateway checks a bounded slice per call and answers `valid: null` with a
 * cursor while there is more (docs/api.md, "The audit chain check"); this asks again with each
 * cursor until it has an answer, reporting the count checked so far as progress.
 */
export function checkChain(
  verify: (cursor: string | null) => Observable<AuditVerification>,
): Observable<ChainState> {
  return verify(null).pipe(
    expand((v) => (v.valid === null && v.next_cursor ? verify(v.next_cursor) : EMPTY)),
    map(chainState),
    startWith<ChainState>({ kind: 'checking', checked: 0 }),
    catchError((err: unknown) =>
      of<ChainState>({ kind: 'error', message: describeHttpError(err) }),
    ),
  );
}

export function entries(n: number): string {
  return `${n} ${n === 1 ? 'entry' : 'entries'}`;
}

/** What a broken chain still vouches for: the `checked` entries before the first bad one. */
export function intact(checked: number): string {
  if (checked === 0) {
    return 'It is the first entry of the log.';
  }
  return checked === 1
    ? 'The 1 entry before it is intact.'
    : `The ${checked} entries before it are intact.`;
}

/** The audit log's hash-chain check, as a badge with its words (never colour alone). */
@Component({
  selector: 'app-audit-chain',
  imports: [DatePipe, MatButtonModule],
  template: `
    <section class="chain" aria-labelledby="audit-chain-title">
      <h2 id="audit-chain-title" class="visually-hidden">Audit chain check</h2>
      @switch (state().kind) {
        @case ('checking') {
          <p class="badge badge--checking" role="status">
            Checking the audit chain… ({{ count(state()) }} checked so far)
          </p>
        }
        @case ('valid') {
          <p class="badge badge--ok" role="status" data-state="valid">
            Audit chain valid ({{ count(state()) }} checked)
          </p>
        }
        @case ('broken') {
          @if (broken(); as b) {
            <p class="badge badge--bad" role="alert" data-state="broken">
              Audit chain BROKEN at entry {{ b.id }}: {{ b.problem }}
            </p>
            <p class="note">{{ intact(b.checked) }}</p>
          }
        }
        @case ('error') {
          <p class="badge badge--warn" role="alert" data-state="error">
            Could not check the audit chain: {{ errorMessage() }}
          </p>
        }
      }
      <div class="row">
        @if (checkedAt(); as at) {
          <span class="note">Checked at {{ at | date: 'yyyy-MM-dd HH:mm:ss' }}</span>
        }
        <button mat-stroked-button type="button" (click)="runs.next()">Check again</button>
      </div>
    </section>
  `,
  styles: `
    :host {
      display: block;
      margin-bottom: 1.25rem;
    }
    .badge {
      display: inline-block;
      margin: 0 0 0.5rem;
      padding: 0.4rem 0.75rem;
      border: 1px solid currentColor;
      border-radius: var(--radius);
      font-weight: 600;
      overflow-wrap: anywhere;
    }
    .badge--checking {
      color: var(--muted);
      background: var(--surface);
      font-weight: 400;
    }
    .badge--ok {
      color: var(--ok-fg);
      background: var(--ok-bg);
    }
    .badge--bad {
      color: var(--bad-fg);
      background: var(--bad-bg);
    }
    .badge--warn {
      color: var(--warn-fg);
      background: var(--warn-bg);
    }
    .row {
      display: flex;
      flex-wrap: wrap;
      align-items: center;
      gap: 0.75rem;
    }
    .note {
      margin: 0 0 0.5rem;
      color: var(--muted);
    }
    .row .note {
      margin: 0;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AuditChain {
  private readonly api = inject(Api);
  protected readonly runs = new Subject<void>();
  protected readonly intact = intact;

  protected readonly state = toSignal(
    this.runs.pipe(
      startWith(undefined),
      // "Check again" drops a check still going and starts over.
      switchMap(() =>
        checkChain((cursor) =>
          this.api.get('/api/v1/audit-log/verify', { query: cursor ? { cursor } : {} }),
        ),
      ),
    ),
    { initialValue: { kind: 'checking', checked: 0 } as ChainState },
  );

  protected count(state: ChainState): string {
    return entries('checked' in state ? state.checked : 0);
  }

  protected broken() {
    const s = this.state();
    return s.kind === 'broken' ? s : null;
  }

  protected errorMessage(): string {
    const s = this.state();
    return s.kind === 'error' ? s.message : '';
  }

  protected checkedAt(): string | null {
    const s = this.state();
    return s.kind === 'valid' || s.kind === 'broken' ? s.at : null;
  }
}
