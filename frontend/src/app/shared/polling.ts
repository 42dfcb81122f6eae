import { DestroyRef, Signal, inject, signal } from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import {
  Observable,
  Subject,
  catchError,
  defer,
  map,
  of,
  repeat,
  startWith,
  switchMap,
} from 'rxjs';

import { describeHttpError } from '../api';

/**
 * How often lists that change on their own (node status, assignments, "My GPUs") ask again: well
 * inside the 5 s in which a change must show without a reload (docs/adr/0015-web-app.md).
 */
export const REFRESH_MS = 3000;

export interface Polled<T> {
  /** The last value the server sent; kept while a later request fails. */
  readonly value: Signal<T | undefined>;
  /** Why the last request failed, in words; null after a success. */
  readonly error: Signal<string | null>;
  /** True until the first answer (value or error) arrives. */
  readonly loading: Signal<boolean>;
  /** When the value was last received. */
  readonly updatedAt: Signal<Date | null>;
  /** Asks again now (after a change the page made), and goes on polling from there. */
  reload(): void;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * Loads `load()` now and again every `everyMs` after each answer (never two requests at once), until
 * the calling component is destroyed. Must be called in an injection context (a field initializer).
 * `everyMs: 0` loads once; `reload()` then asks again.
 */
export function poll<T>(load: () => Observable<T>, everyMs = REFRESH_MS): Polled<T> {
  const destroyRef = inject(DestroyRef);
  const value = signal<T | undefined>(undefined);
  const error = signal<string | null>(null);
  const loading = signal(true);
  const updatedAt = signal<Date | null>(null);
  const trigger = new Subject<void>();

  // defer: each repeat calls load() again, so a page whose query changed asks the new question.
  const once = () =>
    defer(load).pipe(
      map((v): Outcome<T> => ({ ok: true, value: v })),
      catchError((e: unknown) => of<Outcome<T>>({ ok: false, error: e })),
    );
  trigger
    .pipe(
      startWith(undefined),
      // A reload cancels the request in flight and the wait, and starts the cycle again.
      switchMap(() => (everyMs > 0 ? once().pipe(repeat({ delay: everyMs })) : once())),
      takeUntilDestroyed(destroyRef),
    )
    .subscribe((outcome) => {
      if (outcome.ok) {
        value.set(outcome.value);
        error.set(null);
        updatedAt.set(new Date());
      } else {
        error.set(describeHttpError(outcome.error));
      }
      loading.set(false);
    });

  return {
    value: value.asReadonly(),
    error: error.asReadonly(),
    loading: loading.asReadonly(),
    updatedAt: updatedAt.asReadonly(),
    reload: () => trigger.next(),
  };
}
