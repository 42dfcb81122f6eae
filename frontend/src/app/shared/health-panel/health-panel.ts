import { DatePipe } from '@angular/common';
import { HttpErrorResponse } from '@angular/common/http';
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  computed,
  inject,
  signal,
} from '@angular/core';
import { Subscription } from 'rxjs';

import {
  HealthApi,
  HealthzReply,
  SERVICE_NAMES,
  ServiceName,
  ServiceState,
  isHealthzReply,
} from '../../api';

type HealthView =
  | { kind: 'loading' }
  | { kind: 'error'; message: string }
  | { kind: 'ready'; reply: HealthzReply; checkedAt: Date };

/** What each service is for, so the panel tells a reader what is affected when one is down. */
const SERVICE_ROLES: Record<ServiceName, string> = {
  identity: 'Users, invites and sign-in',
  pki: 'Node certificates',
  inventory: 'Nodes and GPUs',
  scheduler: 'GPU assignments',
  notify: 'Email',
};

export interface ServiceRow {
  name: ServiceName;
  role: string;
  // A gateway older or newer than this UI may leave a service out; show that rather than guess.
  state: ServiceState | 'unknown';
}

/** Shows `GET /api/v1/healthz`: the overall status and one row per service. */
@Component({
  selector: 'app-health-panel',
  imports: [DatePipe],
  templateUrl: './health-panel.html',
  styleUrl: './health-panel.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class HealthPanel {
  private readonly api = inject(HealthApi);
  private request?: Subscription;

  protected readonly view = signal<HealthView>({ kind: 'loading' });

  protected readonly reply = computed(() => {
    const view = this.view();
    return view.kind === 'ready' ? view : null;
  });

  protected readonly errorMessage = computed(() => {
    const view = this.view();
    return view.kind === 'error' ? view.message : null;
  });

  protected readonly services = computed<ServiceRow[]>(() => {
    const services = this.reply()?.reply.services;
    return SERVICE_NAMES.map((name) => ({
      name,
      role: SERVICE_ROLES[name],
      state: services?.[name] === 'ok' || services?.[name] === 'down' ? services[name] : 'unknown',
    }));
  });

  protected readonly summary = computed(() => {
    const ready = this.reply();
    if (!ready) {
      return '';
    }
    const notOk = this.services().filter((s) => s.state !== 'ok');
    if (ready.reply.status === 'ok' && notOk.length === 0) {
      return 'All services are running.';
    }
    return notOk.length === 0
      ? 'The gateway reports a degraded system.'
      : `Not running: ${notOk.map((s) => s.name).join(', ')}.`;
  });

  constructor() {
    inject(DestroyRef).onDestroy(() => this.request?.unsubscribe());
    this.refresh();
  }

  refresh(): void {
    this.request?.unsubscribe();
    this.view.set({ kind: 'loading' });
    this.request = this.api.healthz().subscribe({
      next: (reply) => this.view.set({ kind: 'ready', reply, checkedAt: new Date() }),
      error: (err: unknown) => {
        // A degraded gateway may answer 503 and still send the healthz body: that is a result.
        if (err instanceof HttpErrorResponse && isHealthzReply(err.error)) {
          this.view.set({ kind: 'ready', reply: err.error, checkedAt: new Date() });
        } else {
          this.view.set({ kind: 'error', message: describeError(err) });
        }
      },
    });
  }
}

function describeError(err: unknown): string {
  if (err instanceof HttpErrorResponse) {
    if (err.status === 0) {
      return 'The gateway could not be reached.';
    }
    return `The gateway answered ${err.status}${err.statusText ? ` ${err.statusText}` : ''}.`;
  }
  return 'The health check failed.';
}
