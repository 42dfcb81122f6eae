import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import {
  AbstractControl,
  FormControl,
  FormGroup,
  ReactiveFormsModule,
  ValidationErrors,
  Validators,
} from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { firstValueFrom } from 'rxjs';

import { Api, type Quota, SelfServiceApi, describeHttpError } from '../../api';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { atLimit, limitsOf, parseSubjectKey, subjectKey, subjectName, usedOf } from './quota-view';

// The most the gateway sends in one page (shared/API.md, "Lists").
const PAGE_LIMIT = 500;

function wholeOrEmpty(control: AbstractControl<number | null>): ValidationErrors | null {
  const v = control.value;
  return v === null || Number.isInteger(v) ? null : { whole: true };
}

/** `/admin/quotas`: every quota, used against its limits; set or change a user's or a group's. */
@Component({
  selector: 'app-quotas',
  imports: [
    ReactiveFormsModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    MatTableModule,
    ListState,
  ],
  templateUrl: './quotas.html',
  styleUrl: '../../shared/list-page.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Quotas {
  private readonly api = inject(Api);
  private readonly selfService = inject(SelfServiceApi);
  private readonly toast = inject(Toast);

  // Polled: use changes as assignments start and end.
  protected readonly quotas = poll(() => this.selfService.quotas());
  protected readonly users = poll(
    () => this.api.get('/api/v1/users', { query: { limit: PAGE_LIMIT } }),
    0,
  );
  protected readonly groups = poll(
    () => this.api.get('/api/v1/groups', { query: { limit: PAGE_LIMIT } }),
    0,
  );
  protected readonly userList = computed(() =>
    (this.users.value()?.items ?? []).slice().sort((a, b) => a.email.localeCompare(b.email)),
  );
  protected readonly groupList = computed(() =>
    (this.groups.value()?.items ?? []).slice().sort((a, b) => a.name.localeCompare(b.name)),
  );
  protected readonly columns = ['subject', 'type', 'gpus', 'hours', 'month', 'actions'];
  protected readonly rows = computed(() => {
    const users = this.userList();
    const groups = this.groupList();
    return (this.quotas.value()?.items ?? [])
      .map((q) => ({
        quota: q,
        key: subjectKey(q.subject_type, q.subject_id),
        name: subjectName(q, users, groups),
        gpus: usedOf(q.used.gpus_now, q.max_gpus),
        gpusFull: atLimit(q.used.gpus_now, q.max_gpus),
        hours: q.max_hours === null ? 'no limit' : `${q.max_hours} h`,
        month: usedOf(q.used.gpu_hours_this_month, q.gpu_hours_per_month),
        monthFull: atLimit(q.used.gpu_hours_this_month, q.gpu_hours_per_month),
      }))
      .sort(
        (a, b) =>
          a.quota.subject_type.localeCompare(b.quota.subject_type) || a.name.localeCompare(b.name),
      );
  });
  protected readonly trackByKey = (_: number, row: { key: string }) => row.key;

  protected readonly form = new FormGroup({
    subject: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
    max_gpus: new FormControl<number | null>(null, [Validators.min(0), wholeOrEmpty]),
    max_hours: new FormControl<number | null>(null, [Validators.min(1), wholeOrEmpty]),
    gpu_hours_per_month: new FormControl<number | null>(null, [Validators.min(0)]),
  });
  protected readonly saving = signal(false);
  protected readonly formError = signal<string | null>(null);

  protected error(
    name: 'subject' | 'max_gpus' | 'max_hours' | 'gpu_hours_per_month',
  ): string | null {
    const e = this.form.controls[name].errors;
    if (!e) {
      return null;
    }
    if (e['required']) {
      return 'Choose a user or a group.';
    }
    if (e['whole']) {
      return 'Enter a whole number, or leave it empty for no limit.';
    }
    if (e['min']) {
      return `Enter at least ${(e['min'] as { min: number }).min}, or leave it empty for no limit.`;
    }
    return 'Check this field.';
  }

  /** Fills the form with a quota to change. */
  protected edit(q: Quota): void {
    this.form.setValue({
      subject: subjectKey(q.subject_type, q.subject_id),
      max_gpus: q.max_gpus,
      max_hours: q.max_hours,
      gpu_hours_per_month: q.gpu_hours_per_month,
    });
    this.formError.set(null);
    document.getElementById('quota-form-title')?.scrollIntoView?.({ block: 'start' });
  }

  /** Picking a subject shows its current limits, if it has a quota. */
  protected subjectChosen(key: string): void {
    const q = this.quotas
      .value()
      ?.items.find((x) => subjectKey(x.subject_type, x.subject_id) === key);
    this.form.patchValue({
      max_gpus: q?.max_gpus ?? null,
      max_hours: q?.max_hours ?? null,
      gpu_hours_per_month: q?.gpu_hours_per_month ?? null,
    });
  }

  async save(): Promise<void> {
    if (this.saving()) {
      return;
    }
    this.formError.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    const value = this.form.getRawValue();
    const subject = parseSubjectKey(value.subject);
    if (!subject) {
      return;
    }
    this.saving.set(true);
    try {
      const saved = await firstValueFrom(
        this.selfService.setQuota(subject.type, subject.id, limitsOf(value)),
      );
      this.toast.done(`Quota of ${subjectName(saved, this.userList(), this.groupList())} saved.`);
      this.quotas.reload();
    } catch (err) {
      this.formError.set(describeHttpError(err));
    } finally {
      this.saving.set(false);
    }
  }
}
