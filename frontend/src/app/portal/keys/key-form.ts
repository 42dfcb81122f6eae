import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  computed,
  inject,
  output,
  signal,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import {
  AbstractControl,
  FormControl,
  ReactiveFormsModule,
  ValidationErrors,
} from '@angular/forms';
import { ErrorStateMatcher } from '@angular/material/core';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';

import { Api, SshKey, asSentence, codeOf, describeHttpError, problemOf } from '../../api';
import { Toast } from '../../shared/toast';
import { ParsedKey, checkKey, keygenLine } from './check-key';

/** Problem codes of `POST /me/ssh-keys` (docs/api.md). */
const INVALID_SSH_KEY = 'invalid_ssh_key';
const DUPLICATE_SSH_KEY = 'duplicate_ssh_key';

function keyValidator(control: AbstractControl<string>): ValidationErrors | null {
  const check = checkKey(control.value ?? '');
  return check.ok ? null : { key: check.message, problem: check.problem };
}

/** Says what is wrong as soon as something was pasted, not only after the field is left. */
class AsSoonAsPasted implements ErrorStateMatcher {
  isErrorState(control: AbstractControl | null): boolean {
    return !!control?.invalid && (control.dirty || control.touched);
  }
}

/** What the page shows after a key was added: the server's fingerprint, and ssh-keygen's line. */
interface Added {
  key: SshKey;
  keygen: string | null;
}

/** The "Public key" field and "Add key": checks the key here, then the server checks it again. */
@Component({
  selector: 'app-key-form',
  imports: [ReactiveFormsModule, MatButtonModule, MatFormFieldModule, MatInputModule],
  template: `
    <form (submit)="submit($event)" novalidate aria-labelledby="add-key-title">
      <h2 id="add-key-title">Add a key</h2>
      <mat-form-field appearance="outline" subscriptSizing="dynamic">
        <mat-label>Public key</mat-label>
        <textarea
          #field
          matInput
          [formControl]="control"
          [errorStateMatcher]="matcher"
          rows="4"
          spellcheck="false"
          autocomplete="off"
          autocapitalize="off"
          placeholder="ssh-ed25519 AAAAC3Nza… you@lab.org"
        ></textarea>
        <mat-hint>The one line of your .pub file, e.g. id_ed25519.pub.</mat-hint>
        @if (errorText(); as error) {
          <mat-error data-testid="key-error">{{ error }}</mat-error>
        }
      </mat-form-field>
      @if (isPrivate()) {
        <div class="private" role="alert" data-testid="private-key-warning">
          <p>
            <strong>Stop: that is your private key.</strong> It stays on this page and was not sent.
            Anyone who has it can sign in as you, so never paste it into a website, chat or email.
          </p>
          <button mat-stroked-button type="button" (click)="clear()">Clear the field</button>
        </div>
      }
      @if (failure(); as message) {
        <p class="failure" role="alert">Your key was not added. {{ message }}</p>
      }
      <div class="actions">
        <button
          mat-flat-button
          type="submit"
          [disabled]="busy() || (!!text().trim() && !check().ok)"
        >
          Add key
        </button>
        @if (busy()) {
          <span role="status">Adding your key…</span>
        }
      </div>
    </form>
    @if (added(); as done) {
      <div class="added" role="status" data-testid="added-key">
        <p>
          <strong>Key added.</strong> Its fingerprint, as <code>ssh-keygen -l -f</code> prints it
          for your .pub file:
        </p>
        <pre data-testid="added-fingerprint">{{ done.keygen ?? done.key.fingerprint }}</pre>
        @if (done.keygen) {
          <p class="muted">
            The server's fingerprint: <code>{{ done.key.fingerprint }}</code>
          </p>
        }
      </div>
    }
  `,
  styles: `
    form {
      display: flex;
      flex-direction: column;
      gap: 0.5rem;
    }
    h2 {
      margin: 0;
      font-size: 1.2rem;
    }
    textarea {
      font-family: var(--mono);
      font-size: 0.85rem;
      word-break: break-all;
    }
    .actions {
      display: flex;
      align-items: center;
      gap: 0.75rem;
    }
    .private,
    .failure {
      margin: 0;
      padding: 0.75rem;
      border-radius: var(--radius);
      background: var(--bad-bg);
      color: var(--bad-fg);
    }
    .private p {
      margin: 0 0 0.5rem;
    }
    .added {
      margin-top: 1rem;
      padding: 0.75rem;
      border-radius: var(--radius);
      background: var(--ok-bg);
      color: var(--ok-fg);
    }
    .added p {
      margin: 0;
    }
    pre,
    code {
      font-family: var(--mono);
    }
    pre {
      margin: 0.5rem 0;
      padding: 0.5rem 0.75rem;
      /* Wrapped, not scrolled: nothing is hidden at 390 px, and no scroll area needs the keyboard. */
      white-space: pre-wrap;
      overflow-wrap: anywhere;
      background: var(--surface);
      color: var(--text);
      border-radius: var(--radius);
    }
    .muted {
      font-size: 0.9rem;
    }
    .muted code {
      overflow-wrap: anywhere;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class KeyForm {
  private readonly api = inject(Api);
  private readonly toast = inject(Toast);

  /** A key was added: the page reloads its list and the signed-in user. */
  readonly keyAdded = output<SshKey>();

  protected readonly control = new FormControl('', {
    nonNullable: true,
    validators: [keyValidator],
  });
  protected readonly matcher = new AsSoonAsPasted();
  protected readonly text = signal('');
  protected readonly check = computed(() => checkKey(this.text()));
  protected readonly isPrivate = computed(() => {
    const check = this.check();
    return !check.ok && check.problem === 'private_key';
  });
  /** The server's reason for refusing the key, shown under the field until it changes. */
  private readonly serverError = signal<string | null>(null);
  protected readonly errorText = computed(() => {
    const check = this.check();
    return check.ok ? this.serverError() : check.message;
  });
  protected readonly busy = signal(false);
  /** Why the last attempt failed, when it was not the key itself (the gateway was down...). */
  protected readonly failure = signal<string | null>(null);
  protected readonly added = signal<Added | null>(null);

  private readonly field = viewChild.required<ElementRef<HTMLTextAreaElement>>('field');

  constructor() {
    this.control.valueChanges.pipe(takeUntilDestroyed()).subscribe((value) => {
      this.text.set(value);
      this.serverError.set(null);
    });
  }

  protected submit(event?: Event): void {
    event?.preventDefault();
    const check = this.check();
    if (this.busy()) {
      return;
    }
    if (!check.ok) {
      // Nothing invalid is sent: above all, never a private key.
      this.control.markAsTouched();
      this.field().nativeElement.focus();
      return;
    }
    this.busy.set(true);
    this.failure.set(null);
    this.added.set(null);
    this.api.post('/api/v1/me/ssh-keys', { body: { public_key: this.text().trim() } }).subscribe({
      next: (key) => {
        this.busy.set(false);
        this.added.set({ key, keygen: keygenOf(check.key, key) });
        this.control.reset('');
        this.toast.done('Key added.');
        this.keyAdded.emit(key);
      },
      error: (err: unknown) => {
        this.busy.set(false);
        const code = codeOf(err);
        if (code === INVALID_SSH_KEY) {
          this.refuse(asSentence(problemOf(err)?.detail ?? 'The server refused this key.'));
        } else if (code === DUPLICATE_SSH_KEY) {
          this.refuse('You have added this key already: it is in the list of your keys below.');
        } else {
          this.failure.set(describeHttpError(err));
        }
      },
    });
  }

  protected clear(): void {
    this.control.reset('');
    this.field().nativeElement.focus();
  }

  private refuse(message: string): void {
    this.serverError.set(message);
    this.control.setErrors({ server: message });
    this.control.markAsTouched();
    this.field().nativeElement.focus();
  }
}

/** ssh-keygen's line for the added key, when the server added the key that was checked here. */
function keygenOf(parsed: ParsedKey, key: SshKey): string | null {
  return parsed.type === key.type ? keygenLine(parsed, key.fingerprint, key.comment) : null;
}
