import { ChangeDetectionStrategy, Component, inject, output, signal } from '@angular/core';
import {
  FormControl,
  FormGroup,
  FormGroupDirective,
  ReactiveFormsModule,
  Validators,
} from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';

import { Api, User, codeOf, problemOf } from '../../api';
import { Toast } from '../../shared/toast';
import { describeWithFields } from './user-view';

/** Invite someone by email (`POST /users/invites`): gpulab is invite-only. */
@Component({
  selector: 'app-invite-form',
  imports: [
    ReactiveFormsModule,
    MatButtonModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
  ],
  template: `
    <form
      [formGroup]="form"
      (ngSubmit)="submit(formDirective)"
      #formDirective="ngForm"
      novalidate
      aria-labelledby="invite-title"
    >
      <h2 id="invite-title">Invite someone</h2>
      <div class="fields">
        <mat-form-field appearance="outline" class="email">
          <mat-label>Email</mat-label>
          <input matInput type="email" formControlName="email" autocomplete="off" required />
          @if (form.controls.email.hasError('email')) {
            <mat-error>Enter an email address like ada&#64;lab.org.</mat-error>
          } @else {
            <mat-error>Enter the email address to invite.</mat-error>
          }
        </mat-form-field>
        <mat-form-field appearance="outline" class="role">
          <mat-label>Role</mat-label>
          <mat-select formControlName="role">
            <mat-option value="user">user</mat-option>
            <mat-option value="admin">admin</mat-option>
          </mat-select>
        </mat-form-field>
        <button mat-flat-button type="submit" [disabled]="busy()">
          {{ busy() ? 'Sending invite…' : 'Send invite' }}
        </button>
      </div>
      <p class="hint">
        They get an email with a link to set their name and password; the list below shows whether
        it went out. Inviting an invited address again sends a new link and the old one stops
        working.
      </p>
      @if (error(); as message) {
        <p class="error" role="alert" data-testid="invite-error">{{ message }}</p>
      }
    </form>
  `,
  styles: `
    form {
      padding: 1rem 1.25rem;
      margin-bottom: 1.5rem;
      background: var(--surface);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    h2 {
      margin: 0 0 0.75rem;
      font-size: 1.15rem;
    }
    .fields {
      display: flex;
      flex-wrap: wrap;
      align-items: flex-start;
      gap: 0 1rem;
    }
    .email {
      flex: 1 1 18rem;
    }
    .role {
      flex: 0 1 10rem;
    }
    button {
      margin-top: 0.5rem;
    }
    .hint {
      margin: 0;
      color: var(--muted);
      font-size: 0.9rem;
    }
    .error {
      margin: 0.75rem 0 0;
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class InviteForm {
  private readonly api = inject(Api);
  private readonly toast = inject(Toast);

  /** The invited user, as the server answered. */
  readonly invited = output<User>();

  protected readonly form = new FormGroup({
    email: new FormControl('', {
      nonNullable: true,
      validators: [Validators.required, Validators.email],
    }),
    role: new FormControl<User['role']>('user', { nonNullable: true }),
  });
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  protected submit(formDirective: FormGroupDirective): void {
    if (this.form.invalid || this.busy()) {
      this.form.markAllAsTouched();
      return;
    }
    const email = this.form.controls.email.value.trim();
    const role = this.form.controls.role.value;
    this.busy.set(true);
    this.error.set(null);
    this.api.post('/api/v1/users/invites', { body: { email, role } }).subscribe({
      next: (user) => {
        this.busy.set(false);
        this.toast.done(`Invite sent to ${user.email}.`);
        // resetForm, not reset: the form must not show "Enter the email" errors after a success.
        formDirective.resetForm({ email: '', role: 'user' });
        this.invited.emit(user);
      },
      error: (err: unknown) => {
        this.busy.set(false);
        this.error.set(inviteError(err));
      },
    });
  }
}

/** Why an invite was refused, in words. */
export function inviteError(err: unknown): string {
  if (codeOf(err) === 'user_already_active') {
    // The detail starts with the address ("ada@lab.org already has an account (active)"): an
    // email keeps its lower case, so no asSentence here.
    const detail = problemOf(err)?.detail?.trim().replace(/[.]$/, '');
    const why = detail ? `${detail}.` : 'That address already has an account.';
    return `${why} There is no one to invite: find them in the list below.`;
  }
  return describeWithFields(err);
}
