import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  afterNextRender,
  computed,
  inject,
  input,
  output,
  signal,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed, toSignal } from '@angular/core/rxjs-interop';
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
import { MatRadioModule } from '@angular/material/radio';
import { MatSelectModule } from '@angular/material/select';

import { Api, Assignment, Environment, Node, User } from '../../api';
import { formatMb } from '../../shared/format';
import { poll } from '../../shared/polling';
import { Toast } from '../../shared/toast';
import { assignmentBody, createError } from './assignment-view';
import { gpuCapacity, nodeOptionText } from './capacity';

// The most the gateway sends in one page (shared/API.md, "Lists").
const PAGE_LIMIT = 500;

/** Whole numbers only: GPUs, CPUs and MiB are counted, not measured. */
function wholeNumber(control: AbstractControl<number | null>): ValidationErrors | null {
  const value = control.value;
  return value === null || Number.isInteger(value) ? null : { wholeNumber: true };
}

/** Hours may be left empty (the Environment's default expiry); otherwise more than zero. */
function positiveOrEmpty(control: AbstractControl<number | null>): ValidationErrors | null {
  const value = control.value;
  return value === null || value > 0 ? null : { positive: true };
}

/** The create form of `/admin/assignments`: who gets which GPUs, where, and for how long. */
@Component({
  selector: 'app-assignment-form',
  imports: [
    DatePipe,
    ReactiveFormsModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatRadioModule,
    MatSelectModule,
  ],
  templateUrl: './assignment-form.html',
  styleUrl: './assignment-form.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AssignmentForm {
  private readonly api = inject(Api);
  private readonly toast = inject(Toast);

  /** Every user (the form offers the active ones), Environment and node, as the page loaded them. */
  readonly users = input.required<readonly User[]>();
  readonly environments = input.required<readonly Environment[]>();
  readonly nodes = input.required<readonly Node[]>();

  readonly created = output<Assignment>();
  readonly cancelled = output<void>();

  private readonly heading = viewChild.required<ElementRef<HTMLElement>>('heading');

  // Every active assignment (whatever the list's filters): what the free GPUs are counted against.
  protected readonly active = poll(() =>
    this.api.get('/api/v1/assignments', { query: { status: 'active', limit: PAGE_LIMIT } }),
  );

  protected readonly form = new FormGroup({
    userId: new FormControl<string | null>(null, Validators.required),
    environmentId: new FormControl<string | null>(null, Validators.required),
    gpus: new FormControl<number | null>(1, [Validators.required, Validators.min(1), wholeNumber]),
    cpus: new FormControl<number | null>(0, [Validators.required, Validators.min(0), wholeNumber]),
    ramMb: new FormControl<number | null>(0, [Validators.required, Validators.min(0), wholeNumber]),
    hours: new FormControl<number | null>(null, positiveOrEmpty),
    placement: new FormControl<'dynamic' | 'fixed'>('dynamic', { nonNullable: true }),
    // Enabled only for `fixed`: a disabled control is not validated, so only `fixed` needs a node.
    nodeId: new FormControl<string | null>({ value: null, disabled: true }, Validators.required),
  });
  private readonly value = toSignal(this.form.valueChanges, {
    initialValue: this.form.getRawValue(),
  });

  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  protected readonly userOptions = computed(() =>
    this.users()
      .filter((user) => user.status === 'active')
      .sort((a, b) => a.email.localeCompare(b.email))
      .map((user) => ({
        id: user.id,
        canAssign: user.has_ssh_key,
        text: user.has_ssh_key ? user.email : `${user.email} — no SSH key yet, cannot be assigned`,
      })),
  );

  protected readonly environment = computed(() =>
    this.environments().find((env) => env.id === this.value().environmentId),
  );
  protected readonly fixed = computed(() => this.value().placement === 'fixed');

  protected readonly nodeOptions = computed(() => {
    const env = this.environment();
    if (!env) {
      return [];
    }
    const assignments = this.active.value()?.items ?? [];
    const migOnly = env.enforcement_mode === 'mig';
    return env.node_ids
      .map((id) => this.nodes().find((node) => node.id === id))
      .filter((node): node is Node => !!node && node.status !== 'revoked')
      .sort((a, b) => a.hostname.localeCompare(b.hostname))
      .map((node) => ({
        id: node.id,
        text: nodeOptionText(node, gpuCapacity(node, assignments, migOnly)),
      }));
  });

  /** The hint under "Hours": when it would end, or what leaving it empty means. */
  protected readonly expiryDefault = computed(() => {
    const hours = this.environment()?.default_expiry_hours;
    return hours ? `the Environment's default, ${hours} h` : 'no expiry';
  });
  protected readonly endsAt = computed(() => {
    const hours = this.value().hours;
    return typeof hours === 'number' && hours > 0 ? new Date(Date.now() + hours * 3_600_000) : null;
  });
  protected readonly ramHint = computed(() => {
    const mb = this.value().ramMb;
    return typeof mb === 'number' && mb > 0 ? formatMb(mb) : null;
  });

  constructor() {
    const { environmentId, placement, nodeId } = this.form.controls;
    // A new Environment brings its defaults; a node outside it is no longer a choice.
    environmentId.valueChanges.pipe(takeUntilDestroyed()).subscribe((id) => {
      const env = this.environments().find((e) => e.id === id);
      if (!env) {
        return;
      }
      this.form.patchValue({
        cpus: env.default_cpus,
        ramMb: env.default_ram_mb,
        hours: env.default_expiry_hours ?? null,
      });
      if (nodeId.value && !env.node_ids.includes(nodeId.value)) {
        nodeId.reset(null);
      }
    });
    placement.valueChanges.pipe(takeUntilDestroyed()).subscribe((value) => {
      if (value === 'fixed') {
        nodeId.enable();
      } else {
        nodeId.disable();
      }
    });
    // The form appears on "New assignment": bring the keyboard to it.
    afterNextRender(() => this.heading().nativeElement.focus());
  }

  protected submit(): void {
    if (this.form.invalid || this.busy()) {
      this.form.markAllAsTouched();
      return;
    }
    const v = this.form.getRawValue();
    const body = assignmentBody({
      userId: v.userId!,
      environmentId: v.environmentId!,
      gpus: v.gpus!,
      cpus: v.cpus!,
      ramMb: v.ramMb!,
      hours: v.hours,
      placement: v.placement,
      nodeId: v.nodeId,
    });
    const email = this.users().find((u) => u.id === body.user_id)?.email ?? 'This user';
    this.busy.set(true);
    this.error.set(null);
    this.api.post('/api/v1/assignments', { body }).subscribe({
      next: (assignment) => {
        this.busy.set(false);
        const host = this.nodes().find((n) => n.id === assignment.node_id)?.hostname ?? 'its node';
        const gpus = assignment.gpus.map((g) => g.index).join(', ');
        this.toast.done(`Assignment created: ${email} on ${host}, GPU ${gpus}.`);
        this.created.emit(assignment);
      },
      error: (err: unknown) => {
        this.busy.set(false);
        this.error.set(createError(err, email));
      },
    });
  }
}
