import type { Params } from '@angular/router';

import type { Query } from '../../api';

// The audit page's state, kept out of the components so it can be tested on its own: the filter form
// <-> the URL query <-> the API query, and the stack of cursors behind "Previous page".
//
// The URL uses the API's own parameter names, with times in UTC (RFC 3339), so a link means the same
// moments wherever it is opened; only the form shows them in the browser's local time.

export type AuditQuery = Query<'/api/v1/audit-log', 'get'>;

export const PAGE_SIZES = [25, 50, 100] as const;
export type PageSize = (typeof PAGE_SIZES)[number];
/** The gateway's own default `limit` for GET /api/v1/audit-log (its OpenAPI document). */
export const DEFAULT_PAGE_SIZE: PageSize = 50;

/** The filters as the URL and the API carry them; a filter left out is not set. */
export interface AuditFilters {
  actor_id?: string;
  action?: string;
  target_type?: string;
  target_id?: string;
  /** Inclusive, RFC 3339 in UTC. */
  since?: string;
  /** Exclusive, RFC 3339 in UTC. */
  until?: string;
}

export const FILTER_KEYS = [
  'actor_id',
  'action',
  'target_type',
  'target_id',
  'since',
  'until',
] as const satisfies readonly (keyof AuditFilters)[];

const TIME_KEYS = new Set<keyof AuditFilters>(['since', 'until']);

/** What the page shows: the filters and the page size (the URL holds both). */
export interface AuditView {
  filters: AuditFilters;
  limit: PageSize;
}

/** The filter form's values: times as `<input type="datetime-local">` values, in local time. */
export interface AuditForm {
  actor: string;
  action: string;
  targetType: string;
  targetId: string;
  from: string;
  until: string;
}

export const EMPTY_FORM: AuditForm = {
  actor: '',
  action: '',
  targetType: '',
  targetId: '',
  from: '',
  until: '',
};

// ---- times ----

const LOCAL_INPUT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?$/;

/** A datetime-local value ("2030-01-02T03:04", local time) as RFC 3339 in UTC; null if not one. */
export function localToUtc(local: string): string | null {
  const m = LOCAL_INPUT.exec(local.trim());
  if (!m) {
    return null;
  }
  const [y, mo, d, h, mi, s = '0', ms = '0'] = m.slice(1);
  const date = new Date(+y, +mo - 1, +d, +h, +mi, +s, +ms.padEnd(3, '0'));
  return Number.isNaN(date.getTime()) ? null : utcIso(date);
}

/** An RFC 3339 moment as a datetime-local value in local time ("2030-01-02T03:04"); '' if not one. */
export function utcToLocal(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) {
    return '';
  }
  const d = new Date(t);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const day = `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  const seconds = d.getSeconds() || d.getMilliseconds() ? `:${p(d.getSeconds())}` : '';
  return `${day}T${p(d.getHours())}:${p(d.getMinutes())}${seconds}`;
}

/** RFC 3339 in UTC, without the milliseconds when there are none: "2030-01-02T03:04:00Z". */
export function utcIso(date: Date): string {
  return date.toISOString().replace('.000Z', 'Z');
}

/** "UTC+02:00": the browser's offset at `at`, for the hint under the time fields. */
export function utcOffset(at = new Date()): string {
  const minutes = -at.getTimezoneOffset();
  const abs = Math.abs(minutes);
  const p = (n: number) => String(n).padStart(2, '0');
  return `UTC${minutes < 0 ? '-' : '+'}${p(Math.floor(abs / 60))}:${p(abs % 60)}`;
}

// ---- the form ----

/** The filters a form asks for, or why it cannot be applied. */
export function filtersFromForm(form: AuditForm): { filters: AuditFilters } | { error: string } {
  const filters: AuditFilters = {};
  const text: [keyof AuditFilters, string][] = [
    ['actor_id', form.actor],
    ['action', form.action],
    ['target_type', form.targetType],
    ['target_id', form.targetId],
  ];
  for (const [key, value] of text) {
    if (value.trim()) {
      filters[key] = value.trim();
    }
  }
  for (const [key, value, label] of [
    ['since', form.from, 'From'],
    ['until', form.until, 'Until'],
  ] as const) {
    if (!value.trim()) {
      continue;
    }
    const utc = localToUtc(value);
    if (utc === null) {
      return { error: `"${label}" is not a date and time.` };
    }
    filters[key] = utc;
  }
  if (filters.since && filters.until && Date.parse(filters.since) >= Date.parse(filters.until)) {
    return { error: '"Until" must be later than "From".' };
  }
  return { filters };
}

/** The form showing these filters (times in local time). */
export function formFromFilters(filters: AuditFilters): AuditForm {
  return {
    actor: filters.actor_id ?? '',
    action: filters.action ?? '',
    targetType: filters.target_type ?? '',
    targetId: filters.target_id ?? '',
    from: filters.since ? utcToLocal(filters.since) : '',
    until: filters.until ? utcToLocal(filters.until) : '',
  };
}

// ---- the URL ----

/** The view a URL query asks for; what cannot be read (a time that is none, a page size not offered) is left out. */
export function viewFromParams(params: Params): AuditView {
  const filters: AuditFilters = {};
  for (const key of FILTER_KEYS) {
    const raw = first(params[key])?.trim();
    if (!raw) {
      continue;
    }
    if (TIME_KEYS.has(key)) {
      const t = Date.parse(raw);
      if (!Number.isNaN(t)) {
        filters[key] = utcIso(new Date(t));
      }
    } else {
      filters[key] = raw;
    }
  }
  const limit = Number(first(params['limit']));
  return { filters, limit: isPageSize(limit) ? limit : DEFAULT_PAGE_SIZE };
}

/** The URL query for a view: only the filters that are set, and the page size when not the default. */
export function viewToParams(view: AuditView): Params {
  const params: Params = {};
  for (const key of FILTER_KEYS) {
    if (view.filters[key]) {
      params[key] = view.filters[key];
    }
  }
  if (view.limit !== DEFAULT_PAGE_SIZE) {
    params['limit'] = String(view.limit);
  }
  return params;
}

export function sameFilters(a: AuditFilters, b: AuditFilters): boolean {
  return FILTER_KEYS.every((key) => (a[key] ?? '') === (b[key] ?? ''));
}

export function sameView(a: AuditView, b: AuditView): boolean {
  return a.limit === b.limit && sameFilters(a.filters, b.filters);
}

export function hasFilters(filters: AuditFilters): boolean {
  return FILTER_KEYS.some((key) => !!filters[key]);
}

export function isPageSize(n: number): n is PageSize {
  return (PAGE_SIZES as readonly number[]).includes(n);
}

function first(value: unknown): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' ? v : undefined;
}

// ---- the API and paging ----

/**
 * The pages before the one shown: `cursors[i]` is the `cursor` that loaded page i + 2 (page 1 needs
 * none). "Next page" pushes the reply's `next_cursor`, "Previous page" pops.
 */
export type CursorStack = readonly string[];

export const FIRST_PAGE: CursorStack = [];

export function pageNumber(stack: CursorStack): number {
  return stack.length + 1;
}

export function currentCursor(stack: CursorStack): string | null {
  return stack.length ? stack[stack.length - 1] : null;
}

export function nextPage(stack: CursorStack, nextCursor: string | null): CursorStack {
  return nextCursor ? [...stack, nextCursor] : stack;
}

export function previousPage(stack: CursorStack): CursorStack {
  return stack.slice(0, -1);
}

/** The query for GET /api/v1/audit-log: the view's filters and size, and the page's cursor. */
export function apiQuery(view: AuditView, cursor: string | null): AuditQuery {
  const query: AuditQuery = { ...view.filters, limit: view.limit };
  if (cursor) {
    query.cursor = cursor;
  }
  return query;
}

// ---- actions ----

/**
 * The actions gpulab writes today, offered before any entry was loaded (identity's audit writers:
 * auth/, users/, invites/, ssh_keys/, bootstrap.py and audit/service.py for the other services'
 * events). The field stays free text: a newer service may write others, and those seen on a loaded
 * page are offered too.
 */
export const KNOWN_ACTIONS: readonly string[] = [
  'assignment.created',
  'assignment.ended',
  'assignment.expired',
  'assignment.revoked',
  'auth.login',
  'auth.login_failed',
  'auth.logout',
  'environment.created',
  'environment.deleted',
  'environment.node_attached',
  'environment.node_detached',
  'environment.updated',
  'node.created',
  'node.deleted',
  'node.enrollment_token_issued',
  'ssh_key.added',
  'ssh_key.removed',
  'user.admin_bootstrapped',
  'user.invite_accepted',
  'user.invite_delivery_failed',
  'user.invited',
  'user.role_changed',
  'user.status_changed',
];

/** The known actions and those seen, once each, sorted. */
export function actionOptions(seen: Iterable<string>): string[] {
  return [...new Set([...KNOWN_ACTIONS, ...seen])].sort();
}
