import { OFFER, quota } from '../../testing/self-service.testing';
import {
  estimateText,
  gpuHoursLeft,
  gpusLeft,
  longestRequest,
  overQuota,
  queueText,
  quotaLines,
  tightest,
} from './quota-left';

describe('what the quotas leave', () => {
  it('shows each use against its limit, and what is left', () => {
    expect(quotaLines(quota())).toEqual([
      { label: 'GPUs held now', text: '1 of 4 (3 left)' },
      { label: 'GPU-hours this month', text: '37.5 of 100 (62.5 left)' },
    ]);
  });

  it('says "no limit" where a limit is null, and never a negative rest', () => {
    const q = quota({
      max_gpus: null,
      gpu_hours_per_month: 10,
      used: { gpus_now: 3, gpu_hours_this_month: 12.345 },
    });
    expect(quotaLines(q)).toEqual([
      { label: 'GPUs held now', text: '3 (no limit)' },
      { label: 'GPU-hours this month', text: '12.35 of 10 (0 left)' },
    ]);
  });

  it('takes the tightest of the Environment, user and group limits', () => {
    expect(tightest(null, undefined)).toBeNull();
    expect(tightest(48, null, 12)).toBe(12);
    expect(longestRequest(OFFER, quota({ max_hours: 24 }))).toBe(24);
    expect(longestRequest({ ...OFFER, max_hours: null }, quota({ max_hours: null }))).toBeNull();
    const group = quota({ subject_type: 'group', max_hours: 6 });
    expect(longestRequest(OFFER, quota(), group)).toBe(6);
  });

  it('counts the GPUs and GPU-hours left under both the user and the group', () => {
    const group = quota({
      subject_type: 'group',
      max_gpus: 2,
      gpu_hours_per_month: null,
      used: { gpus_now: 1, gpu_hours_this_month: 0 },
    });
    expect(gpusLeft(quota())).toBe(3);
    expect(gpusLeft(quota(), group)).toBe(1);
    expect(gpuHoursLeft(quota(), group)).toBe(62.5);
    expect(gpusLeft(undefined)).toBeNull();
  });

  it('warns before sending what a quota would refuse', () => {
    expect(overQuota(3, 10, quota())).toBeNull();
    expect(overQuota(4, 1, quota())).toBe('Your quota lets you hold 3 more GPUs now.');
    expect(overQuota(2, 40, quota())).toBe(
      'That is 80 GPU-hours; your quota leaves 62.5 this month.',
    );
    expect(overQuota(100, 100, undefined)).toBeNull();
  });

  it('puts the estimate and the queue in words', () => {
    const time = (iso: string) => `at ${iso}`;
    expect(estimateText({ fits_now: true, position: 1, estimated_start_at: null }, time)).toBe(
      'starts now',
    );
    expect(
      estimateText(
        { fits_now: false, position: 2, estimated_start_at: '2030-01-01T12:00:00Z' },
        time,
      ),
    ).toBe('position 2, estimated start at 2030-01-01T12:00:00Z');
    expect(estimateText({ fits_now: false, position: 3, estimated_start_at: null }, time)).toBe(
      'position 3, start unknown',
    );
    expect(queueText(OFFER)).toBe('2 of 8 GPUs free; 1 request waiting for 4 GPUs.');
    expect(queueText({ ...OFFER, queued_requests: 0, queued_gpus: 0 })).toBe(
      '2 of 8 GPUs free; nobody is waiting.',
    );
  });
});
