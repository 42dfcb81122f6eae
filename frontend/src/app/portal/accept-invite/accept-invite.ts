import { DatePipe } from '@angular/common';
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  Injector,
  afterNextRender,
  computed,
  inject,
  signal,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { ActivatedRoute, Router, RouterLink } from '@angular/router';
import { Subscription } from 'rxjs';

import {
  INVALID_PASSWORD,
  INVITE_USED,
  InviteInfo,
  InvitesApi,
  User,
  asSentence,
  describeHttpError,
  problemOf,
  statusOf,
} from '../../api';
import { Auth } from '../../core/auth';
import { PASSWORD_MAX, PASSWORD_MIN, checkPassword, characterCount } from './password-rules';

/** Why an invite cannot be used; each has its own message and no retry. */
export type GoneReason = 'expired' | 'used' | 'invalid';

type InviteView =
  | { kind: 'loading' }
  | { kind: 'error'; message: string }
  | { kind: 'gone'; reason: GoneReason }
  | { kind: 'form'; invite: InviteInfo }
  | { kind: 'done'; user: User };

/** What the sign-in page says to someone who has just accepted their invite. */
export const ACCOUNT_READY_NOTICE = 'Your account is ready. Sign in with your new password.';

// identity refuses a longer name (gpulab_core.contracts.identity AcceptInviteRequest.name).
const NAME_MAX = 200;

/**
 * `/invite/:token`, where the link in an invite email lands: shows whom the invite is for, takes a
 * name and a password, activates the account, and sends the person to sign in with it.
 */
@Component({
  selector: 'app-accept-invite',
  imports: [DatePipe, RouterLink],
  templateUrl: './accept-invite.html',
  styleUrl: './accept-invite.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AcceptInvite {
  private readonly api = inject(InvitesApi);
  private readonly auth = inject(Auth);
  private readonly router = inject(Router);
  private readonly injector = inject(Injector);
  private token = '';
  private request?: Subscription;

  protected readonly passwordMin = PASSWORD_MIN;
  protected readonly passwordMax = PASSWORD_MAX;

  protected readonly view = signal<InviteView>({ kind: 'loading' });

  protected readonly name = signal('');
  protected readonly password = signal('');
  protected readonly repeat = signal('');
  protected readonly nameTouched = signal(false);
  protected readonly passwordTouched = signal(false);
  protected readonly repeatTouched = signal(false);

  protected readonly submitting = signal(false);
  /** The server's reason for refusing the password (422 `invalid_password`). */
  protected readonly serverPasswordError = signal<string | null>(null);
  /** Why the last submit failed when it can simply be tried again. */
  protected readonly submitError = signal<string | null>(null);

  protected readonly check = computed(() => checkPassword(this.password(), this.repeat()));

  protected readonly nameError = computed(() => {
    const name = this.name().trim();
    if (!name) {
      return this.nameTouched() ? 'Enter your name.' : null;
    }
    return characterCount(name) > NAME_MAX ? `Use at most ${NAME_MAX} characters.` : null;
  });

  protected readonly passwordError = computed(() => {
    const server = this.serverPasswordError();
    if (server) {
      return server;
    }
    const { length, lengthOk, tooLong } = this.check();
    // Too long is worth saying at once; too short only once the person has left the field.
    if (tooLong || (!lengthOk && this.passwordTouched())) {
      return `Use ${PASSWORD_MIN} to ${PASSWORD_MAX} characters; this has ${length}.`;
    }
    return null;
  });

  protected readonly repeatError = computed(() => {
    const repeat = this.repeat();
    const password = this.password();
    if (this.check().matches || (!repeat && !this.repeatTouched())) {
      return null;
    }
    // While the repeat is still a prefix of the password the person is most likely still typing.
    return this.repeatTouched() || !password.startsWith(repeat)
      ? 'The two passwords do not match.'
      : null;
  });

  protected readonly canSubmit = computed(
    () =>
      !this.submitting() &&
      this.name().trim() !== '' &&
      this.nameError() === null &&
      this.check().valid &&
      this.serverPasswordError() === null,
  );

  private readonly passwordInput = viewChild<ElementRef<HTMLInputElement>>('passwordInput');
  private readonly submitAlert = viewChild<ElementRef<HTMLElement>>('submitAlert');
  private readonly outcome = viewChild<ElementRef<HTMLElement>>('outcome');

  constructor() {
    const destroyRef = inject(DestroyRef);
    destroyRef.onDestroy(() => this.request?.unsubscribe());
    // The router reuses this component when only the token changes, so follow the parameter.
    inject(ActivatedRoute)
      .paramMap.pipe(takeUntilDestroyed(destroyRef))
      .subscribe((params) => {
        this.token = params.get('token') ?? '';
        this.load();
      });
  }

  load(): void {
    this.request?.unsubscribe();
    this.submitting.set(false);
    this.view.set({ kind: 'loading' });
    this.request = this.api.lookup(this.token).subscribe({
      next: (invite) => this.view.set({ kind: 'form', invite }),
      error: (err: unknown) => {
        const status = statusOf(err);
        // 422: the gateway refused the token's shape (too long), so the link is broken too.
        if (status === 404 || status === 410 || status === 422) {
          this.view.set({ kind: 'gone', reason: goneReason(err) });
        } else {
          this.view.set({ kind: 'error', message: describeHttpError(err) });
        }
      },
    });
  }

  protected onInput(field: 'name' | 'password' | 'repeat', event: Event): void {
    const value = (event.target as HTMLInputElement).value;
    this[field].set(value);
    if (field === 'password') {
      // A changed password may well satisfy the server; let the person try it.
      this.serverPasswordError.set(null);
    }
  }

  protected submit(event?: Event): void {
    event?.preventDefault();
    // The button is disabled while a request runs, but a fast double click or Enter can still fire
    // before the page re-renders: this flag, set synchronously, is what prevents a second POST.
    if (!this.canSubmit()) {
      return;
    }
    const name = this.name().trim();
    this.submitting.set(true);
    this.submitError.set(null);
    this.serverPasswordError.set(null);
    this.request?.unsubscribe();
    this.request = this.api.accept(this.token, { name, password: this.password() }).subscribe({
      next: (user) => {
        this.submitting.set(false);
        this.view.set({ kind: 'done', user });
        // Accepting does not sign in (docs/api.md): the sign-in page, with the email filled in.
        this.auth.notice.set(ACCOUNT_READY_NOTICE);
        void this.router.navigate(['/login'], { queryParams: { email: user.email } });
      },
      error: (err: unknown) => {
        this.submitting.set(false);
        const status = statusOf(err);
        const problem = problemOf(err);
        if (status === 422 && problem?.code === INVALID_PASSWORD) {
          this.serverPasswordError.set(asSentence(problem.detail ?? 'The password was refused.'));
          this.focusAfterRender(this.passwordInput);
        } else if (status === 404 || status === 410) {
          this.view.set({ kind: 'gone', reason: goneReason(err) });
          this.focusAfterRender(this.outcome);
        } else {
          this.submitError.set(describeHttpError(err));
          this.focusAfterRender(this.submitAlert);
        }
      },
    });
  }

  /** Moves focus to what changed, so a screen reader announces it and the keyboard starts there. */
  private focusAfterRender(target: () => ElementRef<HTMLElement> | undefined): void {
    afterNextRender(() => target()?.nativeElement.focus(), { injector: this.injector });
  }
}

function goneReason(err: unknown): GoneReason {
  if (statusOf(err) !== 410) {
    return 'invalid';
  }
  // A 410 without a known code is still an invite that cannot be used any more: treat it as expired,
  // whose message (ask for a new invite) is the one that helps.
  return problemOf(err)?.code === INVITE_USED ? 'used' : 'expired';
}
