import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';

import type { GpuRequest } from '../../api';

/** The reason's length limit: one or two sentences for the mail to the person. */
export const REASON_MAX = 500;

/** Asks why a request is denied; closes with the reason (trimmed), or nothing when cancelled. */
@Component({
  selector: 'app-deny-dialog',
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
  ],
  template: `
    <h2 mat-dialog-title>Deny the request of {{ data.user_email }}?</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
      <mat-dialog-content>
        <p>
          {{ data.gpus }} GPU{{ data.gpus === 1 ? '' : 's' }} for {{ data.hours }} hours in
          {{ data.environment_name }}. They receive the reason by email.
        </p>
        <mat-form-field subscriptSizing="dynamic">
          <mat-label>Reason</mat-label>
          <textarea
            matInput
            formControlName="reason"
            rows="3"
            [maxlength]="max"
            required
          ></textarea>
          @if (reason.invalid && reason.touched) {
            <mat-error>Say why, so that they know what to do instead.</mat-error>
          }
        </mat-form-field>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit" class="danger">Deny request</button>
      </mat-dialog-actions>
    </form>
  `,
  styles: `
    mat-form-field {
      display: block;
      min-width: min(24rem, 70vw);
    }
    .danger {
      --mat-button-filled-container-color: var(--bad-fg);
      --mat-button-filled-label-text-color: #fff;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class DenyDialog {
  protected readonly data = inject<GpuRequest>(MAT_DIALOG_DATA);
  private readonly ref = inject<MatDialogRef<DenyDialog, string>>(MatDialogRef);
  protected readonly max = REASON_MAX;
  protected readonly form = new FormGroup({
    reason: new FormControl('', {
      nonNullable: true,
      validators: [Validators.required, (c) => (c.value.trim() ? null : { blank: true })],
    }),
  });
  protected readonly reason = this.form.controls.reason;

  protected submit(): void {
    if (this.reason.invalid) {
      this.reason.markAsTouched();
      return;
    }
    this.ref.close(this.reason.value.trim());
  }
}
