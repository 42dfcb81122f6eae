import {
  ChangeDetectionStrategy,
  Component,
  computed,
  inject,
  linkedSignal,
  signal,
} from '@angular/core';
import { toObservable, toSignal } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { ActivatedRoute, Router } from '@angular/router';
import { catchError, map, of, startWith, switchMap, tap } from 'rxjs';

import { Api, AuditLogPage, describeHttpError } from '../../api';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { AuditChain } from './audit-chain';
import { AuditFiltersForm } from './audit-filters';
import {
  AuditFilters,
  AuditView,
  CursorStack,
  FIRST_PAGE,
  PAGE_SIZES,
  PageSize,
  actionOptions,
  apiQuery,
  currentCursor,
  hasFilters,
  nextPage,
  pageNumber,
  previousPage,
  sameFilters,
  sameView,
  viewFromParams,
  viewToParams,
} from './audit-query';
import { AuditTable } from './audit-table';

type Loaded =
  { kind: 'loading' } | { kind: 'ok'; page: AuditLogPage } | { kind: 'error'; message: string };

/** identity answers at most 500 users a page (GET /api/v1/users `limit` maximum). */
const USERS_LIMIT = 500;

/**
 * `/admin/audit`: who did what, newest first, filtered and paged. The filters and the page size live
 * in the URL (a filtered view can be linked, and survives a reload); the cursors of the pages before
 * the one shown live here, and go back to page 1 whenever the URL changes.
 */
@Component({
  selector: 'app-audit',
  imports: [
    MatButtonModule,
    MatFormFieldModule,
    MatSelectModule,
    ListState,
    AuditChain,
    AuditFiltersForm,
    AuditTable,
  ],
  templateUrl: './audit.html',
  styleUrl: './audit.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Audit {
  private readonly api = inject(Api);
  private readonly router = inject(Router);
  private readonly route = inject(ActivatedRoute);

  protected readonly pageSizes = PAGE_SIZES;

  protected readonly users = poll(
    () => this.api.get('/api/v1/users', { query: { limit: USERS_LIMIT } }),
    0,
  );
  protected readonly userList = computed(() => this.users.value()?.items ?? []);

  private readonly params = toSignal(this.route.queryParams, { requireSync: true });
  protected readonly view = computed(() => viewFromParams(this.params()), { equal: sameView });
  /** Apart from the view, so that a new page size leaves filters typed but not applied alone. */
  protected readonly filters = computed(() => this.view().filters, { equal: sameFilters });
  /** The cursors behind "Previous page"; back to page 1 whenever the view changes. */
  protected readonly cursors = linkedSignal<AuditView, CursorStack>({
    source: this.view,
    computation: () => FIRST_PAGE,
  });
  protected readonly pageNumber = computed(() => pageNumber(this.cursors()));
  private readonly attempt = signal(0);

  private readonly seenActions = signal<ReadonlySet<string>>(new Set());
  protected readonly actions = computed(() => actionOptions(this.seenActions()));

  protected readonly loaded = toSignal(
    toObservable(
      computed(() => ({
        query: apiQuery(this.view(), currentCursor(this.cursors())),
        attempt: this.attempt(),
      })),
    ).pipe(
      switchMap(({ query }) =>
        this.api.get('/api/v1/audit-log', { query }).pipe(
          tap((page) => this.remember(page)),
          map((page): Loaded => ({ kind: 'ok', page })),
          catchError((err: unknown) =>
            of<Loaded>({ kind: 'error', message: describeHttpError(err) }),
          ),
          startWith<Loaded>({ kind: 'loading' }),
        ),
      ),
    ),
    { initialValue: { kind: 'loading' } as Loaded },
  );

  protected readonly page = computed(() => {
    const loaded = this.loaded();
    return loaded.kind === 'ok' ? loaded.page : null;
  });
  protected readonly items = computed(() => this.page()?.items ?? []);
  protected readonly error = computed(() => {
    const loaded = this.loaded();
    return loaded.kind === 'error' ? loaded.message : null;
  });
  protected readonly filtered = computed(() => hasFilters(this.view().filters));

  protected applyFilters(filters: AuditFilters): void {
    this.show({ ...this.view(), filters });
  }

  protected setPageSize(limit: PageSize): void {
    this.show({ ...this.view(), limit });
  }

  protected next(): void {
    const cursor = this.page()?.next_cursor ?? null;
    if (cursor) {
      this.cursors.update((stack) => nextPage(stack, cursor));
    }
  }

  protected previous(): void {
    this.cursors.update(previousPage);
  }

  protected retry(): void {
    this.attempt.update((n) => n + 1);
  }

  /** Puts a view in the URL, which loads it; the same view again reloads page 1. */
  private show(view: AuditView): void {
    if (sameView(view, this.view())) {
      this.cursors.set(FIRST_PAGE);
      this.retry();
      return;
    }
    void this.router.navigate([], { relativeTo: this.route, queryParams: viewToParams(view) });
  }

  private remember(page: AuditLogPage): void {
    const seen = this.seenActions();
    const fresh = page.items.map((e) => e.action).filter((a) => !seen.has(a));
    if (fresh.length) {
      this.seenActions.set(new Set([...seen, ...fresh]));
    }
  }
}
