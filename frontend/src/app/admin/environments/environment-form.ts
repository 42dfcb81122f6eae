import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import {
  AbstractControl,
  FormControl,
  FormGroup,
  ReactiveFormsModule,
  ValidationErrors,
  Validators,
} from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { firstValueFrom } from 'rxjs';

import {
  Api,
  type SelfServiceEnvironment as Environment,
  codeOf,
  describeHttpError,
} from '../../api';
import { Toast } from '../../shared/toast';
import { showFieldErrors } from '../nodes/field-errors';
import { changedFields, formValueOf, newFields } from './environment-change';
import { ENFORCEMENT_MODES, SELF_SERVICE_MODES, TUNNEL_PROVIDERS, explain } from './modes';

// The server's bounds (openapi.json, EnvironmentFields): 1-100 characters of name, at most 4096
// CPUs, 64 TiB of RAM in MiB, and an expiry of 1 hour to 366 days.
const NAME_MAX = 100;
const CPUS_MAX = 4096;
const RAM_MAX_MB = 67_108_864;
const EXPIRY_MAX_HOURS = 8784;

function wholeNumber(control: AbstractControl<number | null>): ValidationErrors | null {
  const v = control.value;
  return v === null || Number.isInteger(v) ? null : { whole: true };
}

/** Opened empty ("New Environment") or with the Environment to edit. */
export interface EnvironmentFormData {
  environment?: Environment;
}

/** Creates an Environment, or changes one (sending only what changed). Closes with the result. */
@Component({
  selector: 'app-environment-form',
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
  ],
  templateUrl: './environment-form.html',
  styleUrl: './environment-form.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class EnvironmentForm {
  private readonly api = inject(Api);
  private readonly toast = inject(Toast);
  private readonly ref = inject<MatDialogRef<EnvironmentForm, Environment>>(MatDialogRef);
  protected readonly editing = inject<EnvironmentFormData | null>(MAT_DIALOG_DATA, {
    optional: true,
  })?.environment;

  protected readonly modes = ENFORCEMENT_MODES;
  protected readonly providers = TUNNEL_PROVIDERS;
  protected readonly selfServiceModes = SELF_SERVICE_MODES;
  protected readonly explain = explain;
  protected readonly limits = { NAME_MAX, CPUS_MAX, RAM_MAX_MB, EXPIRY_MAX_HOURS };

  private readonly initial = formValueOf(this.editing);
  protected readonly form = new FormGroup({
    name: new FormControl(this.initial.name, {
      nonNullable: true,
      validators: [Validators.required, Validators.maxLength(NAME_MAX), notBlank],
    }),
    enforcement_mode: new FormControl(this.initial.enforcement_mode, { nonNullable: true }),
    tunnel_provider: new FormControl(this.initial.tunnel_provider, { nonNullable: true }),
    default_cpus: new FormControl(this.initial.default_cpus, [
      Validators.required,
      Validators.min(0),
      Validators.max(CPUS_MAX),
      wholeNumber,
    ]),
    default_ram_mb: new FormControl(this.initial.default_ram_mb, [
      Validators.required,
      Validators.min(0),
      Validators.max(RAM_MAX_MB),
      wholeNumber,
    ]),
    default_expiry_hours: new FormControl(this.initial.default_expiry_hours, [
      Validators.min(1),
      Validators.max(EXPIRY_MAX_HOURS),
      wholeNumber,
    ]),
    self_service: new FormControl(this.initial.self_service, { nonNullable: true }),
    max_hours: new FormControl(this.initial.max_hours, [
      Validators.min(1),
      Validators.max(EXPIRY_MAX_HOURS),
      wholeNumber,
    ]),
  });

  protected readonly submitting = signal(false);
  protected readonly serverError = signal<string | null>(null);

  /** The message under a field: the server's, else the first rule it breaks. */
  protected error(name: keyof typeof this.form.controls): string | null {
    const e = this.form.controls[name].errors;
    if (!e) {
      return null;
    }
    if (e['server']) {
      return e['server'] as string;
    }
    if (e['required'] || e['blank']) {
      return name === 'name' ? 'Enter a name.' : 'Enter a number (0 means no limit).';
    }
    if (e['maxlength']) {
      return `Use at most ${NAME_MAX} characters.`;
    }
    if (e['whole']) {
      return 'Enter a whole number.';
    }
    if (e['min']) {
      if (name === 'max_hours') {
        return 'Enter at least 1 hour, or leave it empty for no limit.';
      }
      return name === 'default_expiry_hours'
        ? 'Enter at least 1 hour, or leave it empty for no expiry.'
        : 'Enter 0 or more (0 means no limit).';
    }
    if (e['max']) {
      return `Enter at most ${(e['max'] as { max: number }).max}.`;
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
    const value = this.form.getRawValue();
    const env = this.editing;
    const change = env ? changedFields(env, value) : null;
    if (env && change && Object.keys(change).length === 0) {
      this.toast.done(`Nothing changed in ${env.name}.`);
      this.ref.close();
      return;
    }
    this.submitting.set(true);
    try {
      const saved = await firstValueFrom(
        env && change
          ? this.api.patch('/api/v1/environments/{id}', { path: { id: env.id }, body: change })
          : this.api.post('/api/v1/environments', { body: newFields(value) }),
      );
      this.ref.close(saved);
    } catch (err) {
      this.serverError.set(this.describe(err));
    } finally {
      this.submitting.set(false);
    }
  }

  private describe(err: unknown): string {
    switch (codeOf(err)) {
      case 'environment_exists':
        return `An Environment named ${this.form.controls.name.value.trim()} exists already: pick another name.`;
      case 'invalid_request':
        return showFieldErrors(this.form, err)
          ? 'The server refused some fields: see the messages under them.'
          : describeHttpError(err);
    }
    // node_not_mig_capable and the rest: the server's own sentence says which node and why.
    return describeHttpError(err);
  }
}

function notBlank(control: AbstractControl<string>): ValidationErrors | null {
  return control.value && !control.value.trim() ? { blank: true } : null;
}
