import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { Api } from './client';
import type { Health, ServiceStates } from './generated/schema';

export type HealthzReply = Health;
export type ServiceName = keyof ServiceStates;
export type ServiceState = ServiceStates[ServiceName];

/** The services the gateway reports on, in the order the UI lists them. */
export const SERVICE_NAMES: readonly ServiceName[] = [
  'identity',
  'pki',
  'inventory',
  'scheduler',
  'notify',
];

/** True when `body` has the healthz shape: a gateway may send it with a 503 while degraded. */
export function isHealthzReply(body: unknown): body is HealthzReply {
  if (typeof body !== 'object' || body === null) {
    return false;
  }
  const { status, services } = body as Partial<HealthzReply>;
  return (
    (status === 'ok' || status === 'degraded') && typeof services === 'object' && services !== null
  );
}

@Injectable({ providedIn: 'root' })
export class HealthApi {
  private readonly api = inject(Api);

  healthz(): Observable<HealthzReply> {
    return this.api.get('/api/v1/healthz');
  }
}
