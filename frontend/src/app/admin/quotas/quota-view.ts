import type { Group, Quota, QuotaLimits, User } from '../../api';
import { formatHours } from '../../portal/request/quota-left';

// The quotas table and form: used against limit, and the three fields of PUT /quotas/... where an
// empty field means no limit (null).

/** "3 of 8", or "3 (no limit)". */
export function usedOf(used: number, limit: number | null): string {
  const u = formatHours(used);
  return limit === null ? `${u} (no limit)` : `${u} of ${formatHours(limit)}`;
}

/** True when a limit is reached: the row says so in more than colour. */
export function atLimit(used: number, limit: number | null): boolean {
  return limit !== null && used >= limit;
}

/** The form's three values as a PUT body: an empty field (null or '') is no limit. */
export function limitsOf(value: {
  max_gpus: number | null | '';
  max_hours: number | null | '';
  gpu_hours_per_month: number | null | '';
}): QuotaLimits {
  const n = (v: number | null | '') => (v === '' || v === null ? null : v);
  return {
    max_gpus: n(value.max_gpus),
    max_hours: n(value.max_hours),
    gpu_hours_per_month: n(value.gpu_hours_per_month),
  };
}

/** The name of a quota's subject: the user's email or the group's name (its id when unknown). */
export function subjectName(
  quota: Quota,
  users: readonly User[],
  groups: readonly Group[],
): string {
  const found =
    quota.subject_type === 'user'
      ? users.find((u) => u.id === quota.subject_id)?.email
      : groups.find((g) => g.id === quota.subject_id)?.name;
  return found ?? quota.subject_id;
}

/** The select's value for a subject: "user:<id>" or "group:<id>". */
export function subjectKey(type: Quota['subject_type'], id: string): string {
  return `${type}:${id}`;
}

export function parseSubjectKey(key: string): { type: Quota['subject_type']; id: string } | null {
  const [type, ...rest] = key.split(':');
  const id = rest.join(':');
  return (type === 'user' || type === 'group') && id ? { type, id } : null;
}
