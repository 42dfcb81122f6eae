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
import { firstValueFrom } from 'rxjs';

import { Api, type Group, type GroupChange, codeOf, describeHttpError } from '../../api';

/** The bounds of a group (libs/gpulab-core contracts/groups.py). */
export const GROUP_NAME_MAX = 100;
export const GROUP_DESCRIPTION_MAX = 2000;

function notBlank(control: AbstractControl<string>): ValidationErrors | null {
  return control.value && !control.value.trim() ? { blank: true } : null;
}

/** What changed between `group` and the form's value: the body of PATCH /groups/{id}. */
export function groupChange(group: Group, name: string, description: string): GroupChange {
  const change: GroupChange = {};
  if (name.trim() !== group.name) {
    change.name = name.trim();
  }
  if (description.trim() !== group.description) {
    change.description = description.trim();
  }
  return change;
}

/** Creates a group (no data) or edits one; closes with the saved group. */
@Component({
  selector: 'app-group-form',
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
  ],
  template: `
    <h2 mat-dialog-title>{{ editing ? 'Edit ' + editing.name : 'New group' }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
      <mat-dialog-content>
        <mat-form-field subscriptSizing="dynamic">
          <mat-label>Name</mat-label>
          <input matInput formControlName="name" autocomplete="off" [maxlength]="nameMax" />
          <mat-error>Enter a name of at most {{ nameMax }} characters.</mat-error>
        </mat-form-field>
        <mat-form-field subscriptSizing="dynamic">
          <mat-label>Description</mat-label>
          <textarea
            matInput
            formControlName="description"
            rows="2"
            [maxlength]="descriptionMax"
          ></textarea>
          <mat-hint>Optional: who is in it, what it pays for.</mat-hint>
        </mat-form-field>
        @if (serverError(); as message) {
          <p class="form-error" role="alert">{{ message }}</p>
        }
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit" [disabled]="submitting()">
          {{ submitting() ? 'Saving…' : editing ? 'Save changes' : 'Create group' }}
        </button>
      </mat-dialog-actions>
    </form>
  `,
  styles: `
    mat-form-field {
      display: block;
      margin-bottom: 0.75rem;
      min-width: min(24rem, 70vw);
    }
    .form-error {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class GroupForm {
  private readonly api = inject(Api);
  private readonly ref = inject<MatDialogRef<GroupForm, Group>>(MatDialogRef);
  protected readonly editing = inject<{ group?: Group } | null>(MAT_DIALOG_DATA, { optional: true })
    ?.group;
  protected readonly nameMax = GROUP_NAME_MAX;
  protected readonly descriptionMax = GROUP_DESCRIPTION_MAX;
  protected readonly form = new FormGroup({
    name: new FormControl(this.editing?.name ?? '', {
      nonNullable: true,
      validators: [Validators.required, Validators.maxLength(GROUP_NAME_MAX), notBlank],
    }),
    description: new FormControl(this.editing?.description ?? '', {
      nonNullable: true,
      validators: [Validators.maxLength(GROUP_DESCRIPTION_MAX)],
    }),
  });
  protected readonly submitting = signal(false);
  protected readonly serverError = signal<string | null>(null);

  async submit(): Promise<void> {
    if (this.submitting()) {
      return;
    }
    this.serverError.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    const { name, description } = this.form.getRawValue();
    const group = this.editing;
    const change = group ? groupChange(group, name, description) : null;
    if (group && change && Object.keys(change).length === 0) {
      this.ref.close();
      return;
    }
    this.submitting.set(true);
    try {
      const saved = await firstValueFrom(
        group && change
          ? this.api.patch('/api/v1/groups/{id}', { path: { id: group.id }, body: change })
          : this.api.post('/api/v1/groups', {
              body: { name: name.trim(), description: description.trim() },
            }),
      );
      this.ref.close(saved);
    } catch (err) {
      this.serverError.set(
        codeOf(err) === 'group_exists'
          ? `A group named ${name.trim()} exists already: pick another name.`
          : describeHttpError(err),
      );
    } finally {
      this.submitting.set(false);
    }
  }
}
