import { HttpClient, HttpHeaders } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';
import { buildParams, buildUrl } from './client';
import type {
  Assignment as GeneratedAssignment,
  Environment as GeneratedEnvironment,
  EnvironmentChange,
  EnvironmentFields,
} from './generated/schema';

// Self-service and fair use (shared/API.md, "Self-service and fair use"), written by hand while the
// gateway's routes are being built: the field names mirror the contract exactly, so that each type
// here becomes an alias of the generated one (`make gen`) once the gateway serves them, and these
// calls move onto `Api`.

export type SelfServiceMode = 'off' | 'approval' | 'auto';

/** What an Environment gains: who may ask for its GPUs, and for how long at most. */
export interface SelfServiceFields {
  /** `off` (the default): only admins assign; `approval`: an admin decides; `auto`: granted when free. */
  self_service: SelfServiceMode;
  /** The longest request in hours; null: no limit. */
  max_hours: number | null;
}

export type SelfServiceEnvironment = GeneratedEnvironment & Partial<SelfServiceFields>;
export type SelfServiceEnvironmentFields = EnvironmentFields & Partial<SelfServiceFields>;
export type SelfServiceEnvironmentChange = EnvironmentChange & Partial<SelfServiceFields>;

export type AssignmentStatus = GeneratedAssignment['status'] | 'released';

/** An Assignment with what self-service adds: the request that made it, the group it is charged to. */
export type SelfServiceAssignment = Omit<GeneratedAssignment, 'status'> & {
  status: AssignmentStatus;
  request_id?: string | null;
  group_id?: string | null;
};

export type RequestStatus = 'pending_approval' | 'queued' | 'granted' | 'denied' | 'cancelled';

/** A request for GPUs (kind `new`) or for more time on an assignment (kind `extension`). */
export interface GpuRequest {
  id: string;
  kind: 'new' | 'extension';
  user_id: string;
  user_email: string;
  environment_id: string;
  environment_name: string;
  group_id: string | null;
  /** Once granted; for an extension, the assignment it extends. */
  assignment_id: string | null;
  gpus: number;
  cpus: number;
  ram_mb: number;
  hours: number;
  note: string | null;
  status: RequestStatus;
  /** Its place in the queue while queued (1 = next). */
  position: number | null;
  estimated_start_at: string | null;
  /** Why it was denied. */
  reason: string | null;
  created_at: string;
  decided_at: string | null;
}

export interface RequestList {
  items: GpuRequest[];
  next_cursor: string | null;
}

/** The body of `POST /me/requests`. */
export interface NewRequest {
  environment_id: string;
  gpus: number;
  cpus?: number;
  ram_mb?: number;
  hours: number;
  group_id?: string;
  note?: string;
}

/** The three limits of a user or a group; null: no limit. */
export interface QuotaLimits {
  max_gpus: number | null;
  max_hours: number | null;
  gpu_hours_per_month: number | null;
}

export interface Quota extends QuotaLimits {
  subject_type: 'user' | 'group';
  subject_id: string;
  used: { gpus_now: number; gpu_hours_this_month: number };
}

export interface MyQuota {
  user: Quota;
  groups: Quota[];
}

/** A self-service Environment as a user sees it: what it offers and how busy it is. */
export interface EnvironmentOffer {
  id: string;
  name: string;
  self_service: Exclude<SelfServiceMode, 'off'>;
  max_hours: number | null;
  default_cpus: number;
  default_ram_mb: number;
  gpus_total: number;
  gpus_free: number;
  queued_requests: number;
  queued_gpus: number;
}

/** Where a request for `gpus` GPUs would stand if it were sent now. */
export interface Estimate {
  fits_now: boolean;
  /** The place in the queue it would get; 1 = first. */
  position: number;
  /** null: now when it fits, else unknown. */
  estimated_start_at: string | null;
}

export type UsageGroupBy = 'user' | 'group' | 'environment' | 'node';

/** Problem `code`s the self-service pages branch on. */
export const QUOTA_EXCEEDED = 'quota_exceeded';
export const OTHERS_WAITING = 'others_waiting';
export const REQUEST_NOT_OPEN = 'request_not_open';
export const GROUP_IN_USE = 'group_in_use';

/** The open states: a request in one of them may still change, and may be cancelled. */
export function isOpen(request: Pick<GpuRequest, 'status'>): boolean {
  return request.status === 'pending_approval' || request.status === 'queued';
}

const url = (template: string, path?: Record<string, string>) =>
  `${API_BASE}${buildUrl(template, path)}`;

/** The self-service routes the generated client does not know yet. Errors arrive as HttpErrorResponse. */
@Injectable({ providedIn: 'root' })
export class SelfServiceApi {
  private readonly http = inject(HttpClient);

  myEnvironments(): Observable<{ items: EnvironmentOffer[] }> {
    return this.http.get<{ items: EnvironmentOffer[] }>(url('/me/environments'));
  }

  estimate(environmentId: string, gpus: number, hours: number): Observable<Estimate> {
    return this.http.get<Estimate>(url('/me/environments/{id}/estimate', { id: environmentId }), {
      params: buildParams({ gpus, hours }),
    });
  }

  myQuota(): Observable<MyQuota> {
    return this.http.get<MyQuota>(url('/me/quota'));
  }

  submit(body: NewRequest): Observable<GpuRequest> {
    return this.http.post<GpuRequest>(url('/me/requests'), body);
  }

  myRequests(): Observable<RequestList> {
    return this.http.get<RequestList>(url('/me/requests'), { params: buildParams({ limit: 500 }) });
  }

  cancel(id: string): Observable<GpuRequest> {
    return this.http.post<GpuRequest>(url('/me/requests/{id}/cancel', { id }), null);
  }

  /** 200 with the Assignment (an `auto` Environment), or 202 with an extension Request. */
  extend(assignmentId: string, hours: number): Observable<SelfServiceAssignment | GpuRequest> {
    return this.http.post<SelfServiceAssignment | GpuRequest>(
      url('/me/assignments/{id}/extend', { id: assignmentId }),
      { hours },
    );
  }

  release(assignmentId: string): Observable<SelfServiceAssignment> {
    return this.http.post<SelfServiceAssignment>(
      url('/me/assignments/{id}/release', { id: assignmentId }),
      null,
    );
  }

  requests(filter: { status?: RequestStatus | ''; environment_id?: string; user_id?: string }) {
    return this.http.get<RequestList>(url('/requests'), {
      params: buildParams({ ...filter, limit: 500 }),
    });
  }

  approve(id: string): Observable<GpuRequest> {
    return this.http.post<GpuRequest>(url('/requests/{id}/approve', { id }), null);
  }

  deny(id: string, reason: string): Observable<GpuRequest> {
    return this.http.post<GpuRequest>(url('/requests/{id}/deny', { id }), { reason });
  }

  quotas(): Observable<{ items: Quota[] }> {
    return this.http.get<{ items: Quota[] }>(url('/quotas'));
  }

  setQuota(subject: Quota['subject_type'], id: string, limits: QuotaLimits): Observable<Quota> {
    const template = subject === 'user' ? '/quotas/users/{id}' : '/quotas/groups/{id}';
    return this.http.put<Quota>(url(template, { id }), limits);
  }

  /** `GET /usage` as CSV (header `key_id,key_name,gpu_hours,assignments`). */
  usageCsv(query: { from: string; until: string; group_by: UsageGroupBy }): Observable<string> {
    return this.http.get(url('/usage'), {
      params: buildParams(query),
      headers: new HttpHeaders({ Accept: 'text/csv' }),
      responseType: 'text',
    });
  }
}

/** True when an extend answer is the Request an admin must approve (202), not the Assignment. */
export function isRequest(reply: SelfServiceAssignment | GpuRequest): reply is GpuRequest {
  return 'kind' in reply && 'hours' in reply;
}
