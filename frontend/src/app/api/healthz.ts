import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';

// Hand-written until the OpenAPI client is generated; the shapes follow `GET /api/v1/healthz`.

/** The services the gateway reports on, in the order the UI lists them. */
export const SERVICE_NAMES = ['identity', 'pki', 'inventory', 'scheduler', 'notify'] as const;

export type ServiceName = (typeof SERVICE_NAMES)[number];
export type ServiceState = 'ok' | 'down';
export type OverallStatus = 'ok' | 'degraded';

export interface HealthzReply {
  status: OverallStatus;
  services: Record<ServiceName, ServiceState>;
}

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
  private readonly http = inject(HttpClient);

  healthz(): Observable<HealthzReply> {
    return this.http.get<HealthzReply>(`${API_BASE}/healthz`);
  }
}
