import type { EnvironmentOffer, Estimate, Quota } from '../../api';

// What a person's quotas leave before they ask for GPUs (GET /me/quota), as the request page shows
// it. null in a limit means no limit (shared/API.md, "Self-service and fair use").

export interface QuotaLine {
  label: string;
  text: string;
}

/** A number of hours as people write it: at most two decimals, no trailing zeros. */
export function formatHours(hours: number): string {
  return String(Math.round(hours * 100) / 100);
}

/** The lines for one quota: GPUs held now and GPU-hours this month, each against its limit. */
export function quotaLines(quota: Quota): QuotaLine[] {
  const { used } = quota;
  const gpus =
    quota.max_gpus === null
      ? `${used.gpus_now} (no limit)`
      : `${used.gpus_now} of ${quota.max_gpus} (${Math.max(0, quota.max_gpus - used.gpus_now)} left)`;
  const hours =
    quota.gpu_hours_per_month === null
      ? `${formatHours(used.gpu_hours_this_month)} (no limit)`
      : `${formatHours(used.gpu_hours_this_month)} of ${formatHours(quota.gpu_hours_per_month)} ` +
        `(${formatHours(Math.max(0, quota.gpu_hours_per_month - used.gpu_hours_this_month))} left)`;
  return [
    { label: 'GPUs held now', text: gpus },
    { label: 'GPU-hours this month', text: hours },
  ];
}

/** The smallest of the limits given, ignoring the absent ones (null: none of them limits). */
export function tightest(...limits: (number | null | undefined)[]): number | null {
  const set = limits.filter((l): l is number => typeof l === 'number');
  return set.length ? Math.min(...set) : null;
}

/** The longest request allowed: the Environment's, the user's and the group's limits together. */
export function longestRequest(
  offer: EnvironmentOffer | undefined,
  user: Quota | undefined,
  group?: Quota,
): number | null {
  return tightest(offer?.max_hours, user?.max_hours, group?.max_hours);
}

/** How many more GPUs the quotas let the person hold now (null: no limit). */
export function gpusLeft(user: Quota | undefined, group?: Quota): number | null {
  const left = (q?: Quota) =>
    q && q.max_gpus !== null ? Math.max(0, q.max_gpus - q.used.gpus_now) : null;
  return tightest(left(user), left(group));
}

/** GPU-hours left this month under the quotas (null: no limit). */
export function gpuHoursLeft(user: Quota | undefined, group?: Quota): number | null {
  const left = (q?: Quota) =>
    q && q.gpu_hours_per_month !== null
      ? Math.max(0, q.gpu_hours_per_month - q.used.gpu_hours_this_month)
      : null;
  return tightest(left(user), left(group));
}

/**
 * Why `gpus` for `hours` would be refused by a quota, in words, or null when the quotas allow it.
 * The server decides in the end (409 quota_exceeded); this only spares a person a refused request.
 */
export function overQuota(
  gpus: number,
  hours: number,
  user: Quota | undefined,
  group?: Quota,
): string | null {
  const gpuRoom = gpusLeft(user, group);
  if (gpuRoom !== null && gpus > gpuRoom) {
    return `Your quota lets you hold ${gpuRoom} more GPU${gpuRoom === 1 ? '' : 's'} now.`;
  }
  const hourRoom = gpuHoursLeft(user, group);
  if (hourRoom !== null && gpus * hours > hourRoom) {
    return `That is ${formatHours(gpus * hours)} GPU-hours; your quota leaves ${formatHours(hourRoom)} this month.`;
  }
  return null;
}

/** The estimate in words: "starts now", "position 2, estimated start …", "position 2, start unknown". */
export function estimateText(estimate: Estimate, formatTime: (iso: string) => string): string {
  if (estimate.fits_now) {
    return 'starts now';
  }
  return estimate.estimated_start_at
    ? `position ${estimate.position}, estimated start ${formatTime(estimate.estimated_start_at)}`
    : `position ${estimate.position}, start unknown`;
}

/** The queue of an Environment in words. */
export function queueText(offer: EnvironmentOffer): string {
  const free = `${offer.gpus_free} of ${offer.gpus_total} GPU${offer.gpus_total === 1 ? '' : 's'} free`;
  if (!offer.queued_requests) {
    return `${free}; nobody is waiting.`;
  }
  const n = offer.queued_requests;
  return `${free}; ${n} request${n === 1 ? '' : 's'} waiting for ${offer.queued_gpus} GPU${offer.queued_gpus === 1 ? '' : 's'}.`;
}
