import type { WritableSignal } from '@angular/core';

import type { Toast } from './toast';

/** What a list page holds for the actions on its rows: which rows are busy, the last failure. */
export interface RowActions {
  readonly busy: WritableSignal<ReadonlySet<string>>;
  readonly actionError: WritableSignal<string | null>;
  readonly toast: Toast;
  reload(): void;
}

/**
 * Runs one row's action: the row is busy meanwhile; a failure is shown (on the page and as a toast)
 * in the words `describe` gives it; the list is read again either way.
 */
export async function runRowAction(
  page: RowActions,
  id: string,
  describe: (err: unknown) => string,
  action: () => Promise<void>,
): Promise<void> {
  page.busy.update((ids) => new Set(ids).add(id));
  page.actionError.set(null);
  try {
    await action();
  } catch (err) {
    const message = describe(err);
    page.actionError.set(message);
    page.toast.failed(message);
  } finally {
    page.busy.update((ids) => {
      const next = new Set(ids);
      next.delete(id);
      return next;
    });
    page.reload();
  }
}
