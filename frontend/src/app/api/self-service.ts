import { HttpClient, HttpHeaders } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';
import { Api, buildParams } from './client';
import type {
  Assignment,
  Environment,
  EnvironmentChange,
  EnvironmentFields,
  EnvironmentOffer,
  EnvironmentOffers,
  Estimate,
  MyQuota,
  NewRequest,
  Quota,
  QuotaLimits,
  QuotaList,
  Request as GpuRequest,
  RequestList,
} from './generated/schema';

// Self-service and fair use (shared/API.md, "Self-service and fair use"; docs/api.md): the types are
// the generated ones (`make gen`), re-exported under the names the pages use.
export type {
  EnvironmentOffer,
  EnvironmentOffers,
  Estimate,
  GpuRequest,
  MyQuota,
  NewRequest,
  Quota,
  QuotaLimits,
  QuotaList,
  RequestList,
};

export type SelfServiceMode = Environment['self_service'];
export type SelfServiceEnvironment = Environment;
export type SelfServiceEnvironmentFields = EnvironmentFields;
export type SelfServiceEnvironmentChange = EnvironmentChange;
export type AssignmentStatus = Assignment['status'];
export type SelfServiceAssignment = Assignment;
export type RequestStatus = GpuRequest['status'];

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

/** The self-service routes, on the typed `Api` (their paths, bodies and replies come from the
 * generated schema); only the CSV export goes around it, since its reply is text. */
@Injectable({ providedIn: 'root' })
export class SelfServiceApi {
  private readonly api = inject(Api);
  private readonly http = inject(HttpClient);

  myEnvironments(): Observable<EnvironmentOffers> {
    return this.api.get('/api/v1/me/environments');
  }

  estimate(environmentId: string, gpus: number, hours: number): Observable<Estimate> {
    return this.api.get('/api/v1/me/environments/{id}/estimate', {
      path: { id: environmentId },
      query: { gpus, hours },
    });
  }

  myQuota(): Observable<MyQuota> {
    return this.api.get('/api/v1/me/quota');
  }

  submit(body: NewRequest): Observable<GpuRequest> {
    return this.api.post('/api/v1/me/requests', { body });
  }

  myRequests(): Observable<RequestList> {
    return this.api.get('/api/v1/me/requests', { query: { limit: 500 } });
  }

  cancel(id: string): Observable<GpuRequest> {
    return this.api.post('/api/v1/me/requests/{id}/cancel', { path: { id } });
  }

  /** 200 with the Assignment (an `auto` Environment), or 202 with an extension Request. */
  extend(assignmentId: string, hours: number): Observable<SelfServiceAssignment | GpuRequest> {
    return this.api.post('/api/v1/me/assignments/{id}/extend', {
      path: { id: assignmentId },
      body: { hours },
    });
  }

  release(assignmentId: string): Observable<SelfServiceAssignment> {
    return this.api.post('/api/v1/me/assignments/{id}/release', { path: { id: assignmentId } });
  }

  requests(filter: {
    status?: RequestStatus | '';
    environment_id?: string;
    user_id?: string;
  }): Observable<RequestList> {
    const { status, ...rest } = filter;
    return this.api.get('/api/v1/requests', {
      query: { ...rest, ...(status ? { status } : {}), limit: 500 },
    });
  }

  approve(id: string): Observable<GpuRequest> {
    return this.api.post('/api/v1/requests/{id}/approve', { path: { id } });
  }

  deny(id: string, reason: string): Observable<GpuRequest> {
    return this.api.post('/api/v1/requests/{id}/deny', { path: { id }, body: { reason } });
  }

  quotas(): Observable<QuotaList> {
    return this.api.get('/api/v1/quotas');
  }

  setQuota(subject: Quota['subject_type'], id: string, limits: QuotaLimits): Observable<Quota> {
    return subject === 'user'
      ? this.api.put('/api/v1/quotas/users/{id}', { path: { id }, body: limits })
      : this.api.put('/api/v1/quotas/groups/{id}', { path: { id }, body: limits });
  }

  /** `GET /usage` as CSV (header `key_id,key_name,gpu_hours,assignments`). */
  usageCsv(query: { from: string; until: string; group_by: UsageGroupBy }): Observable<string> {
    return this.http.get(`${API_BASE}/usage`, {
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
