import { ChangeDetectionStrategy, Component, OnInit, inject, input, signal } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { Router } from '@angular/router';

import { describeHttpError } from '../api';
import { Auth, safeNext } from '../core/auth';
import { HealthPanel } from '../shared/health-panel/health-panel';

/** `/login`: email and password; afterwards the page the person wanted (`?next=`), else the portal. */
@Component({
  selector: 'app-login',
  imports: [ReactiveFormsModule, MatButtonModule, MatFormFieldModule, MatInputModule, HealthPanel],
  template: `
    <section class="login">
      <h1>Sign in to gpulab</h1>
      @if (auth.notice(); as notice) {
        <p class="notice" role="status">{{ notice }}</p>
      }
      <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
        <mat-form-field appearance="outline">
          <mat-label>Email</mat-label>
          <input matInput type="email" formControlName="email" autocomplete="username" required />
          @if (form.controls.email.hasError('email')) {
            <mat-error>Enter an email address like ada&#64;lab.org.</mat-error>
          } @else {
            <mat-error>Enter your email.</mat-error>
          }
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Password</mat-label>
          <input
            matInput
            type="password"
            formControlName="password"
            autocomplete="current-password"
            required
          />
          <mat-error>Enter your password.</mat-error>
        </mat-form-field>
        @if (error(); as message) {
          <p class="error" role="alert" data-testid="login-error">{{ message }}</p>
        }
        <button mat-flat-button type="submit" [disabled]="busy()">
          {{ busy() ? 'Signing in…' : 'Sign in' }}
        </button>
      </form>
      <p class="hint">
        gpulab is invite-only: your admin sends you a link to set your password. Forgot it? Ask your
        admin for a new invite.
      </p>
    </section>
    <app-health-panel />
  `,
  styles: `
    .login {
      max-width: 26rem;
      margin: 0 auto 2rem;
      padding: 1.5rem;
      background: var(--surface);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    form {
      display: flex;
      flex-direction: column;
      gap: 0.25rem;
    }
    .error {
      margin: 0 0 0.75rem;
      color: var(--bad-fg);
    }
    .notice {
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
    .hint {
      color: var(--muted);
      font-size: 0.9rem;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Login implements OnInit {
  protected readonly auth = inject(Auth);
  private readonly router = inject(Router);

  /** Where to go afterwards (`?next=`, bound by the router); only this app's own paths. */
  readonly next = input<string | undefined>();
  /** Filled in after accepting an invite (`?email=`). */
  readonly email = input<string | undefined>();

  protected readonly form = new FormGroup({
    email: new FormControl('', {
      nonNullable: true,
      validators: [Validators.required, Validators.email],
    }),
    password: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
  });
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  ngOnInit(): void {
    const email = this.email();
    if (email) {
      this.form.controls.email.setValue(email);
    }
  }

  protected submit(): void {
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    this.busy.set(true);
    this.error.set(null);
    const { email, password } = this.form.getRawValue();
    this.auth.login(email.trim(), password).subscribe({
      next: () => {
        this.busy.set(false);
        void this.router.navigateByUrl(safeNext(this.next()));
      },
      error: (err: unknown) => {
        this.busy.set(false);
        this.error.set(describeHttpError(err));
        this.form.controls.password.reset();
      },
    });
  }
}
