import {
  ChangeDetectionStrategy,
  Component,
  computed,
  effect,
  inject,
  input,
  output,
  signal,
} from '@angular/core';
import { NonNullableFormBuilder, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';

import type { User } from '../../api';
import {
  AuditFilters,
  EMPTY_FORM,
  filtersFromForm,
  formFromFilters,
  utcOffset,
} from './audit-query';

interface ActorOption {
  id: string;
  label: string;
}

/**
 * The audit log's filter form. It shows the filters it is given (the URL's) and hands back those to
 * apply; the page puts them in the URL, which loads them.
 */
@Component({
  selector: 'app-audit-filters',
  imports: [
    ReactiveFormsModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
  ],
  templateUrl: './audit-filters.html',
  styleUrl: './audit-filters.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AuditFiltersForm {
  /** The filters in force (from the URL). */
  readonly filters = input.required<AuditFilters>();
  readonly users = input<readonly User[]>([]);
  /** Why the users could not be listed, if they could not. */
  readonly usersError = input<string | null>(null);
  readonly actions = input<readonly string[]>([]);

  readonly apply = output<AuditFilters>();

  protected readonly form = inject(NonNullableFormBuilder).group({ ...EMPTY_FORM });
  protected readonly error = signal<string | null>(null);
  protected readonly offset = utcOffset();

  protected readonly actors = computed<ActorOption[]>(() => {
    const options = [...this.users()]
      .sort((a, b) => a.email.localeCompare(b.email))
      .map((u) => ({ id: u.id, label: u.name ? `${u.name} (${u.email})` : u.email }));
    // A link may name someone not in the list (more than one page of users, or not loaded yet).
    const wanted = this.filters().actor_id;
    if (wanted && !options.some((o) => o.id === wanted)) {
      options.unshift({ id: wanted, label: `User ${wanted}` });
    }
    return options;
  });

  constructor() {
    // The form follows the filters in force: on load, after a link, the browser's back button.
    effect(() => {
      this.form.setValue(formFromFilters(this.filters()));
      this.error.set(null);
    });
  }

  protected submit(): void {
    const result = filtersFromForm(this.form.getRawValue());
    if ('error' in result) {
      this.error.set(result.error);
      return;
    }
    this.error.set(null);
    this.apply.emit(result.filters);
  }

  protected clear(): void {
    this.form.setValue({ ...EMPTY_FORM });
    this.error.set(null);
    this.apply.emit({});
  }
}
