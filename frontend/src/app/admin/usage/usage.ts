import { DOCUMENT } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { Observable, firstValueFrom, forkJoin, map, of } from 'rxjs';

import {
  Api,
  SelfServiceApi,
  type Usage as UsageReply,
  type UsageGroupBy,
  type UsageItem,
  describeHttpError,
} from '../../api';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { formatHours } from '../../portal/request/quota-left';
import { UsageChart } from './usage-chart';
import {
  type Bucket,
  buckets,
  chartSeries,
  csvFileName,
  dayCount,
  rangeOf,
  thisMonth,
} from './usage-buckets';

export const GROUP_BY: { value: UsageGroupBy; label: string }[] = [
  { value: 'user', label: 'user' },
  { value: 'group', label: 'group' },
  { value: 'environment', label: 'Environment' },
  { value: 'node', label: 'node' },
];

interface Query {
  from: string;
  until: string;
  group_by: UsageGroupBy;
}

interface Report {
  totals: UsageReply;
  buckets: Bucket[];
  usages: UsageReply[];
}

/** Why the range cannot be asked for, or null. */
export function rangeError(from: string, until: string): string | null {
  if (!from || !until) {
    return 'Enter both days.';
  }
  return dayCount(from, until) === 0 ? 'The last day comes before the first.' : null;
}

/**
 * `/admin/usage`: GPU-hours in a range of days, by user, group, Environment or node: a chart over
 * time (one GET /usage per bucket, in parallel), the totals, and the same rows as a CSV file.
 */
@Component({
  selector: 'app-usage',
  imports: [
    ReactiveFormsModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    MatTableModule,
    ListState,
    UsageChart,
  ],
  templateUrl: './usage.html',
  styleUrls: ['../../shared/list-page.scss', './usage.scss'],
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Usage {
  private readonly api = inject(Api);
  private readonly selfService = inject(SelfServiceApi);
  private readonly document = inject(DOCUMENT);

  protected readonly groupByOptions = GROUP_BY;
  private readonly initial = thisMonth();
  protected readonly form = new FormGroup({
    from: new FormControl(this.initial.from, {
      nonNullable: true,
      validators: [Validators.required],
    }),
    until: new FormControl(this.initial.until, {
      nonNullable: true,
      validators: [Validators.required],
    }),
    group_by: new FormControl<UsageGroupBy>('user', { nonNullable: true }),
  });
  /** What is shown: the form's value when it was last applied. */
  protected readonly query = signal<Query>({ ...this.initial, group_by: 'user' });
  protected readonly formError = signal<string | null>(null);

  protected readonly report = poll(() => this.load(this.query()), 0);
  protected readonly range = computed(() => {
    const q = this.query();
    return rangeOf(q.from, q.until);
  });
  protected readonly items = computed(() => this.report.value()?.totals.items ?? []);
  protected readonly series = computed(() => {
    const r = this.report.value();
    return r ? chartSeries(r.buckets, r.usages) : { keys: [], stacks: [] };
  });
  protected readonly total = computed(() =>
    formatHours(this.items().reduce((a, i) => a + i.gpu_hours, 0)),
  );
  protected readonly keyHeading = computed(
    () => GROUP_BY.find((g) => g.value === this.query().group_by)?.label ?? 'key',
  );
  /** The key column's heading: "User", "Group", "Environment", "Node". */
  protected readonly keyColumn = computed(() => {
    const word = this.keyHeading();
    return word.charAt(0).toUpperCase() + word.slice(1);
  });
  protected readonly columns = ['key', 'gpu_hours', 'assignments'];
  protected readonly formatHours = formatHours;
  protected readonly trackByKey = (_: number, item: UsageItem) => item.key.id ?? item.key.name;

  protected readonly downloading = signal(false);
  protected readonly downloadError = signal<string | null>(null);

  protected apply(): void {
    const { from, until, group_by } = this.form.getRawValue();
    const problem = rangeError(from, until);
    this.formError.set(problem);
    if (problem) {
      return;
    }
    this.query.set({ from, until, group_by });
    this.report.reload();
  }

  /** The same range and rows as CSV, from the server (`Accept: text/csv`), saved as a file. */
  protected async download(): Promise<void> {
    const q = this.query();
    this.downloading.set(true);
    this.downloadError.set(null);
    try {
      const csv = await firstValueFrom(
        this.selfService.usageCsv({ ...rangeOf(q.from, q.until), group_by: q.group_by }),
      );
      const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
      const link = this.document.createElement('a');
      link.href = url;
      link.download = csvFileName(q.from, q.until);
      this.document.body.appendChild(link);
      link.click();
      link.remove();
      // The click has handed the file over; the browser may let the URL go a moment later.
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      this.downloadError.set(`Could not download the CSV: ${describeHttpError(err)}`);
    } finally {
      this.downloading.set(false);
    }
  }

  private load(q: Query): Observable<Report> {
    const ask = (range: { from: string; until: string }) =>
      this.api.get('/api/v1/usage', { query: { ...range, group_by: q.group_by } });
    const list = buckets(q.from, q.until);
    return forkJoin({
      totals: ask(rangeOf(q.from, q.until)),
      usages: list.length ? forkJoin(list.map((b) => ask(b))) : of([] as UsageReply[]),
    }).pipe(map(({ totals, usages }) => ({ totals, usages, buckets: list })));
  }
}
