import { HttpErrorResponse } from '@angular/common/http';

import { problem } from '../../testing/http.testing';
import {
  assignmentBody,
  assignmentsQuery,
  createError,
  expiresAt,
  nodeStateOf,
} from './assignment-view';
import { GPU01, GPU02, assignment, gpu } from './assignments.testing';
import { gpuCapacity, nodeOptionText } from './capacity';

describe('gpuCapacity', () => {
  it('counts every GPU of a node without assignments as free', () => {
    expect(gpuCapacity(GPU01, [])).toEqual({ total: 8, free: 8 });
  });

  it('takes away the GPUs held by active assignments on that node only', () => {
    const list = [
      assignment({
        gpus: [gpu(0, 'a'), gpu(1, 'b')],
      }),
      assignment({ id: 'x2', gpus: [gpu(5, 'c')] }),
      // Another node's, and an ended one here: neither holds a GPU of gpu-01.
      assignment({ id: 'x3', node_id: GPU02.id, gpus: [gpu(2, 'd')] }),
      assignment({ id: 'x4', status: 'revoked', gpus: [gpu(3, 'e')] }),
    ];
    expect(gpuCapacity(GPU01, list)).toEqual({ total: 8, free: 5 });
  });

  it('counts a GPU held twice (which the scheduler never allows) once', () => {
    const list = [assignment(), assignment({ id: 'x2' })];
    expect(gpuCapacity(GPU01, list).free).toBe(6);
  });

  it('counts only MIG-capable GPUs for a mig Environment', () => {
    expect(gpuCapacity(GPU01, [], true)).toEqual({ total: 1, free: 1 });
    expect(gpuCapacity(GPU01, [assignment()], true)).toEqual({ total: 1, free: 0 });
  });

  it('has nothing to offer before the first heartbeat', () => {
    expect(gpuCapacity({ ...GPU01, hardware: null }, [])).toEqual({ total: 0, free: 0 });
  });

  it('writes the option text with host name, free GPUs and status', () => {
    expect(nodeOptionText(GPU01, { total: 8, free: 3 })).toBe('gpu-01 — 3 of 8 GPUs free, online');
    expect(nodeOptionText(GPU02, { total: 1, free: 0 })).toBe('gpu-02 — 0 of 1 GPU free, offline');
  });
});

describe('assignment requests', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  const draft = {
    userId: 'u',
    environmentId: 'e',
    gpus: 2,
    cpus: 8,
    ramMb: 1024,
    hours: 24,
    placement: 'dynamic' as const,
    nodeId: 'n',
  };

  it('sends no node for dynamic placement, and the expiry in RFC 3339 UTC', () => {
    expect(assignmentBody(draft, now)).toEqual({
      user_id: 'u',
      environment_id: 'e',
      gpus: 2,
      cpus: 8,
      ram_mb: 1024,
      placement: 'dynamic',
      expires_at: '2030-01-02T00:00:00Z',
    });
  });

  it('sends the node for fixed placement, and no expiry when hours are empty', () => {
    expect(assignmentBody({ ...draft, placement: 'fixed', hours: null }, now)).toEqual({
      user_id: 'u',
      environment_id: 'e',
      gpus: 2,
      cpus: 8,
      ram_mb: 1024,
      placement: 'fixed',
      node_id: 'n',
    });
  });

  it('turns fractions of an hour into seconds', () => {
    expect(expiresAt(1.5, now)).toBe('2030-01-01T01:30:00Z');
  });

  it('puts only the chosen filters into the query', () => {
    expect(
      assignmentsQuery({ userId: '', environmentId: 'e', nodeId: '', status: 'all' }, 500),
    ).toEqual({
      limit: 500,
      user_id: undefined,
      environment_id: 'e',
      node_id: undefined,
      status: undefined,
    });
  });

  it('words no_capacity with the server detail', () => {
    const err = new HttpErrorResponse({
      status: 409,
      error: problem(409, 'no_capacity', 'not enough free GPUs: 4 asked for, at most 2 free'),
    });
    expect(createError(err, 'ada@lab.org')).toContain(
      'gpulab found no place for this assignment (not enough free GPUs: 4 asked for, at most 2 free).',
    );
  });

  it("words the node's report", () => {
    expect(nodeStateOf(assignment({ node_state: 'pending' }))).toEqual({
      text: 'pending',
      failed: false,
    });
    const failed = assignment({ node_state: 'failed', node_message: 'useradd: exit 9' });
    expect(nodeStateOf(failed)).toEqual({ text: 'failed: useradd: exit 9', failed: true });
    const applied = assignment({ node_state: 'applied', node_message: null });
    expect(nodeStateOf(applied)).toEqual({
      text: 'applied',
      failed: false,
    });
  });
});
