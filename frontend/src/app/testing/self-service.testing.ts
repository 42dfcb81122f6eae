import type { EnvironmentOffer, GpuRequest, Quota } from '../api';
import { USER } from './http.testing';

// Replies of the self-service routes for the specs, shaped as shared/API.md writes them.

export const OFFER: EnvironmentOffer = {
  id: 'e1e1e1e1-0000-4000-8000-000000000001',
  name: 'Deep learning',
  self_service: 'auto',
  max_hours: 48,
  default_cpus: 8,
  default_ram_mb: 65536,
  gpus_total: 8,
  gpus_free: 2,
  queued_requests: 1,
  queued_gpus: 4,
};

export const APPROVAL_OFFER: EnvironmentOffer = {
  ...OFFER,
  id: 'e1e1e1e1-0000-4000-8000-000000000002',
  name: 'Teaching',
  self_service: 'approval',
  max_hours: null,
  queued_requests: 0,
  queued_gpus: 0,
};

export function quota(extra: Partial<Quota> = {}): Quota {
  return {
    subject_type: 'user',
    subject_id: USER.id,
    max_gpus: 4,
    max_hours: 24,
    gpu_hours_per_month: 100,
    used: { gpus_now: 1, gpu_hours_this_month: 37.5 },
    ...extra,
  };
}

export function request(extra: Partial<GpuRequest> = {}): GpuRequest {
  return {
    id: 'r1r1r1r1-0000-4000-8000-000000000001',
    kind: 'new',
    user_id: USER.id,
    user_email: USER.email,
    environment_id: OFFER.id,
    environment_name: OFFER.name,
    group_id: null,
    assignment_id: null,
    gpus: 1,
    cpus: 8,
    ram_mb: 65536,
    hours: 4,
    note: null,
    status: 'queued',
    position: 1,
    estimated_start_at: null,
    reason: null,
    created_at: '2030-01-01T10:00:00Z',
    decided_at: null,
    ...extra,
  };
}
