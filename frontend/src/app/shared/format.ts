// Numbers and times as the pages show them.

/** RAM in MiB as a person reads it: "512 MiB", "16 GiB", "1.5 TiB"; 0 means no limit. */
export function formatMb(mb: number | null | undefined, zero = 'no limit'): string {
  if (mb === null || mb === undefined) {
    return '—';
  }
  if (mb === 0) {
    return zero;
  }
  if (mb < 1024) {
    return `${mb} MiB`;
  }
  const gib = mb / 1024;
  if (gib < 1024) {
    return `${trim(gib)} GiB`;
  }
  return `${trim(gib / 1024)} TiB`;
}

function trim(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1).replace(/\.0$/, '');
}

/**
 * How long until (or since) a moment, coarse enough to read at a glance: "3 d 4 h", "2 h 5 min",
 * "4 min 10 s", "12 s". Negative spans are read as zero.
 */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) {
    return h > 0 ? `${d} d ${h} h` : `${d} d`;
  }
  if (h > 0) {
    return m > 0 ? `${h} h ${m} min` : `${h} h`;
  }
  if (m > 0) {
    return `${m} min ${sec} s`;
  }
  return `${sec} s`;
}

/** "5 s ago", "3 min ago", "2 h ago", or the date for anything older than a day. */
export function formatAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) {
    return 'never';
  }
  const then = Date.parse(iso);
  if (Number.isNaN(then)) {
    return '—';
  }
  const ms = now - then;
  if (ms < 86_400_000) {
    return `${formatSpan(ms).replace(/ \d+ s$/, '')} ago`;
  }
  return new Date(then).toISOString().slice(0, 10);
}
