import type { Group } from '../../api';
import { USER } from '../../testing/http.testing';
import { quota } from '../../testing/self-service.testing';
import { atLimit, limitsOf, parseSubjectKey, subjectKey, subjectName, usedOf } from './quota-view';

describe('quota view', () => {
  it('shows use against the limit', () => {
    expect(usedOf(3, 8)).toBe('3 of 8');
    expect(usedOf(12.345, null)).toBe('12.35 (no limit)');
    expect(atLimit(8, 8)).toBe(true);
    expect(atLimit(9, null)).toBe(false);
  });

  it('sends an empty field as no limit', () => {
    expect(limitsOf({ max_gpus: 2, max_hours: '', gpu_hours_per_month: null })).toEqual({
      max_gpus: 2,
      max_hours: null,
      gpu_hours_per_month: null,
    });
    expect(limitsOf({ max_gpus: 0, max_hours: 24, gpu_hours_per_month: 100 })).toEqual({
      max_gpus: 0,
      max_hours: 24,
      gpu_hours_per_month: 100,
    });
  });

  it('names the subject, and keys it for the select', () => {
    const group: Group = {
      id: 'g1',
      name: 'physics',
      description: '',
      member_ids: [],
      created_at: '2030-01-01T00:00:00Z',
    };
    expect(subjectName(quota(), [USER], [group])).toBe(USER.email);
    expect(subjectName(quota({ subject_type: 'group', subject_id: 'g1' }), [], [group])).toBe(
      'physics',
    );
    expect(subjectName(quota({ subject_id: 'gone' }), [USER], [])).toBe('gone');
    expect(parseSubjectKey(subjectKey('group', 'g1'))).toEqual({ type: 'group', id: 'g1' });
    expect(parseSubjectKey('nobody:x')).toBeNull();
  });
});
