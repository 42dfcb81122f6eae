import type { AuditEntry } from '../../api';
import { ADMIN } from '../../testing/http.testing';

// Audit entries for the audit page's specs.

export function entry(n: number, fields: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    at: `2030-01-02T03:04:${String(n % 60).padStart(2, '0')}Z`,
    actor_id: ADMIN.id,
    actor_email: ADMIN.email,
    action: 'user.invited',
    target_type: 'user',
    target_id: `11111111-2222-4333-8444-${String(n).padStart(12, '0')}`,
    details: { email: `person${n}@lab.org`, role: 'user' },
    ...fields,
  };
}
