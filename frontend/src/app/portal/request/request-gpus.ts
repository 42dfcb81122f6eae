import { DatePipe, formatDate } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  LOCALE_ID,
  computed,
  effect,
  inject,
  signal,
} from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
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
import { RouterLink } from '@angular/router';
import {
  Observable,
  catchError,
  debounceTime,
  distinctUntilChanged,
  firstValueFrom,
  map,
  of,
  startWith,
  switchMap,
} from 'rxjs';

import {
  Api,
  type EnvironmentOffer,
  type Estimate,
  type GpuRequest,
  QUOTA_EXCEEDED,
  SelfServiceApi,
  codeOf,
  describeHttpError,
  problemOf,
} from '../../api';
import { ListState } from '../../shared/list-state';
import { poll } from '../../shared/polling';
import {
  estimateText,
  formatHours,
  longestRequest,
  overQuota,
  queueText,
  quotaLines,
} from './quota-left';

/** A request is for at least one GPU and one hour; the server's own bounds are checked there. */
const MIN = 1;
/** The note's length limit, the gateway's (`NewRequest.note`: 1000 characters). */
export const NOTE_MAX = 1000;
/** How long the form waits after the last keystroke before asking for an estimate. */
const ESTIMATE_DEBOUNCE_MS = 300;

function wholeNumber(control: AbstractControl<number | null>): ValidationErrors | null {
  const v = control.value;
  return v === null || Number.isInteger(v) ? null : { whole: true };
}

type EstimateState =
  | { kind: 'none' }
  | { kind: 'loading' }
  | { kind: 'ok'; estimate: Estimate }
  | { kind: 'error'; message: string };

/**
 * `/request` ("Request GPUs"): ask for GPUs in a self-service Environment. Before sending it shows
 * what the quotas leave and where the request would stand in the queue; after, what became of it.
 */
@Component({
  selector: 'app-request-gpus',
  imports: [
    DatePipe,
    ReactiveFormsModule,
    RouterLink,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    ListState,
  ],
  templateUrl: './request-gpus.html',
  styleUrl: './request-gpus.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class RequestGpus {
  private readonly api = inject(Api);
  private readonly selfService = inject(SelfServiceApi);
  private readonly locale = inject(LOCALE_ID);

  protected readonly offers = poll(() => this.selfService.myEnvironments());
  protected readonly quota = poll(() => this.selfService.myQuota(), 0);
  protected readonly groups = poll(() => this.api.get('/api/v1/me/groups'), 0);

  protected readonly form = new FormGroup({
    environment_id: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
    gpus: new FormControl<number | null>(1, [
      Validators.required,
      Validators.min(MIN),
      wholeNumber,
    ]),
    hours: new FormControl<number | null>(null, [
      Validators.required,
      Validators.min(MIN),
      wholeNumber,
    ]),
    group_id: new FormControl('', { nonNullable: true }),
    note: new FormControl('', { nonNullable: true, validators: [Validators.maxLength(NOTE_MAX)] }),
  });
  private readonly value = toSignal(
    this.form.valueChanges.pipe(map(() => this.form.getRawValue())),
    { initialValue: this.form.getRawValue() },
  );

  protected readonly offerList = computed(() => this.offers.value()?.items ?? []);
  protected readonly groupList = computed(() => this.groups.value()?.items ?? []);
  protected readonly offer = computed(() =>
    this.offerList().find((o) => o.id === this.value().environment_id),
  );
  private readonly userQuota = computed(() => this.quota.value()?.user);
  private readonly groupQuota = computed(() => {
    const id = this.value().group_id;
    return id ? this.quota.value()?.groups.find((q) => q.subject_id === id) : undefined;
  });
  protected readonly groupName = computed(
    () => this.groupList().find((g) => g.id === this.value().group_id)?.name,
  );
  protected readonly userLines = computed(() => {
    const q = this.userQuota();
    return q ? quotaLines(q) : [];
  });
  protected readonly groupLines = computed(() => {
    const q = this.groupQuota();
    return q ? quotaLines(q) : [];
  });
  protected readonly longest = computed(() =>
    longestRequest(this.offer(), this.userQuota(), this.groupQuota()),
  );
  /** Said before sending when a quota would refuse the request; the server decides in the end. */
  protected readonly quotaWarning = computed(() => {
    const { gpus, hours } = this.value();
    return gpus && hours ? overQuota(gpus, hours, this.userQuota(), this.groupQuota()) : null;
  });
  protected readonly queueText = queueText;
  protected readonly noteMax = NOTE_MAX;

  /** Where the chosen request would stand, asked again whenever the Environment, GPUs or hours change. */
  protected readonly estimate = toSignal(
    this.form.valueChanges.pipe(
      startWith(null),
      map(() => this.form.getRawValue()),
      map(({ environment_id, gpus, hours }) => ({ environment_id, gpus, hours })),
      distinctUntilChanged(
        (a, b) => a.environment_id === b.environment_id && a.gpus === b.gpus && a.hours === b.hours,
      ),
      debounceTime(ESTIMATE_DEBOUNCE_MS),
      switchMap((q) => this.askEstimate(q)),
    ),
    { initialValue: { kind: 'none' } as EstimateState },
  );
  protected readonly estimateWords = computed(() => {
    const state = this.estimate();
    return state.kind === 'ok'
      ? estimateText(state.estimate, (iso) => formatDate(iso, 'medium', this.locale))
      : null;
  });

  protected readonly submitting = signal(false);
  protected readonly serverError = signal<{ message: string; needsKey: boolean } | null>(null);
  protected readonly result = signal<GpuRequest | null>(null);

  constructor() {
    // One Environment on offer: it is the one.
    effect(() => {
      const offers = this.offerList();
      if (offers.length === 1 && !this.form.controls.environment_id.value) {
        this.form.controls.environment_id.setValue(offers[0].id);
      }
    });
    // The hours field's upper bound follows the longest request allowed.
    effect(() => {
      const longest = this.longest();
      const hours = this.form.controls.hours;
      hours.setValidators([
        Validators.required,
        Validators.min(MIN),
        wholeNumber,
        ...(longest === null ? [] : [Validators.max(longest)]),
      ]);
      hours.updateValueAndValidity({ emitEvent: false });
    });
  }

  protected longestText(): string {
    const longest = this.longest();
    return longest === null ? 'no limit' : `${formatHours(longest)} hours`;
  }

  protected offerLabel(offer: EnvironmentOffer): string {
    return `${offer.gpus_free} of ${offer.gpus_total} GPUs free${offer.self_service === 'approval' ? ', an admin approves' : ''}`;
  }

  /** The message under a field, or null. */
  protected error(name: 'environment_id' | 'gpus' | 'hours' | 'note'): string | null {
    const e = this.form.controls[name].errors;
    if (!e) {
      return null;
    }
    if (e['required']) {
      return name === 'environment_id'
        ? 'Choose an Environment.'
        : name === 'gpus'
          ? 'Enter how many GPUs.'
          : 'Enter for how many hours.';
    }
    if (e['whole']) {
      return 'Enter a whole number.';
    }
    if (e['min']) {
      return name === 'gpus' ? 'Ask for at least 1 GPU.' : 'Ask for at least 1 hour.';
    }
    if (e['max']) {
      return `At most ${(e['max'] as { max: number }).max} hours here.`;
    }
    if (e['maxlength']) {
      return `Use at most ${NOTE_MAX} characters.`;
    }
    return 'Check this field.';
  }

  async submit(): Promise<void> {
    if (this.submitting()) {
      return;
    }
    this.serverError.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    const v = this.form.getRawValue();
    const note = v.note.trim();
    this.submitting.set(true);
    try {
      const made = await firstValueFrom(
        this.selfService.submit({
          environment_id: v.environment_id,
          gpus: v.gpus!,
          hours: v.hours!,
          ...(v.group_id ? { group_id: v.group_id } : {}),
          ...(note ? { note } : {}),
        }),
      );
      this.result.set(made);
      this.offers.reload();
      this.quota.reload();
    } catch (err) {
      this.serverError.set({
        message: submitError(err),
        needsKey: codeOf(err) === 'user_has_no_ssh_key',
      });
    } finally {
      this.submitting.set(false);
    }
  }

  /** Back to the form for another request. */
  protected another(): void {
    this.result.set(null);
  }

  private askEstimate(q: {
    environment_id: string;
    gpus: number | null;
    hours: number | null;
  }): Observable<EstimateState> {
    const { environment_id, gpus, hours } = q;
    if (!environment_id || !gpus || !hours || gpus < MIN || hours < MIN) {
      return of({ kind: 'none' });
    }
    return this.selfService.estimate(environment_id, gpus, hours).pipe(
      map((estimate): EstimateState => ({ kind: 'ok', estimate })),
      catchError((err: unknown) =>
        of<EstimateState>({ kind: 'error', message: describeHttpError(err) }),
      ),
      startWith<EstimateState>({ kind: 'loading' }),
    );
  }
}

/** Why a request was refused, in words; a quota's detail is shown as the server wrote it. */
export function submitError(err: unknown): string {
  switch (codeOf(err)) {
    case QUOTA_EXCEEDED:
      return problemOf(err)?.detail ?? describeHttpError(err);
    case 'self_service_off':
      return 'This Environment no longer takes requests. Ask an admin for GPUs.';
    case 'user_has_no_ssh_key':
      return 'Add an SSH key first: the nodes let you in with it.';
    default:
      // too_long, not_a_member and the rest: the server's sentence says which limit or group.
      return describeHttpError(err);
  }
}
