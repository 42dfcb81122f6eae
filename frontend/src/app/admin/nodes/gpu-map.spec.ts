import { ADMIN, USER } from '../../testing/http.testing';
import { activeOn, gpuMap, userLabel } from './gpu-map';
import { BOB, PEOPLE, assignment, gpu, node } from './nodes.testing';

describe('gpuMap', () => {
  const gpu01 = node('gpu-01', {
    hardware: { cpu_model: 'x', cpu_cores: 8, ram_mb: 1024, gpus: [gpu(2), gpu(0), gpu(1)] },
  });

  it('gives one tile per GPU in index order, each free or held by the user of an active assignment', () => {
    const tiles = gpuMap(gpu01, [assignment('a1', gpu01.id, USER.id, [gpu(1)])], PEOPLE);

    expect(tiles.map((t) => t.gpu.index)).toEqual([0, 1, 2]);
    expect(tiles.map((t) => t.holders.map((h) => h.label))).toEqual([[], ['ada@lab.org'], []]);
    expect(tiles[1].holders[0]).toEqual({
      assignmentId: 'a1',
      userId: USER.id,
      label: 'ada@lab.org',
    });
  });

  it('ignores assignments of other nodes and ones that ended', () => {
    const tiles = gpuMap(
      gpu01,
      [
        assignment('other', 'id-gpu-02', USER.id, [gpu(0)]),
        assignment('ended', gpu01.id, USER.id, [gpu(0)], { status: 'revoked' }),
        assignment('expired', gpu01.id, USER.id, [gpu(1)], { status: 'expired' }),
      ],
      PEOPLE,
    );

    expect(tiles.every((t) => t.holders.length === 0)).toBe(true);
  });

  it('matches by UUID when both have one, so a swapped GPU at the same index is not shown held', () => {
    const swapped = assignment('a1', gpu01.id, USER.id, [gpu(0, { uuid: 'GPU-old' })]);
    expect(gpuMap(gpu01, [swapped], PEOPLE)[0].holders).toEqual([]);

    const noUuid = assignment('a2', gpu01.id, USER.id, [gpu(0, { uuid: '' })]);
    expect(gpuMap(gpu01, [noUuid], PEOPLE)[0].holders.map((h) => h.label)).toEqual(['ada@lab.org']);
  });

  it('shows every holder of a GPU held twice (the server should never say so) without failing', () => {
    const tiles = gpuMap(
      gpu01,
      [
        assignment('a1', gpu01.id, USER.id, [gpu(0)]),
        assignment('a2', gpu01.id, BOB.id, [gpu(0), gpu(2)]),
      ],
      PEOPLE,
    );

    expect(tiles[0].holders.map((h) => h.label)).toEqual(['ada@lab.org', 'bob@lab.org']);
    expect(tiles[2].holders.map((h) => h.label)).toEqual(['bob@lab.org']);
  });

  it('shows the user id of a holder the user list does not know (or before it loaded)', () => {
    const a = assignment('a1', gpu01.id, 'user-gone', [gpu(0)]);

    expect(gpuMap(gpu01, [a], PEOPLE)[0].holders[0].label).toBe('user-gone');
    expect(gpuMap(gpu01, [a], undefined)[0].holders[0].label).toBe('user-gone');
  });

  it('gives no tiles for a node that reported no hardware or no GPUs', () => {
    expect(gpuMap(node('new', { hardware: null }), [], PEOPLE)).toEqual([]);
    expect(
      gpuMap(
        node('cpu', { hardware: { cpu_model: 'x', cpu_cores: 1, ram_mb: 1, gpus: [] } }),
        [],
        PEOPLE,
      ),
    ).toEqual([]);
  });

  it('names a user by email, else name, else id', () => {
    expect(userLabel(ADMIN.id, PEOPLE)).toBe('grace@lab.org');
    expect(userLabel('x', [{ ...ADMIN, id: 'x', email: '', name: 'Grace' }])).toBe('Grace');
    expect(userLabel('nobody', PEOPLE)).toBe('nobody');
  });

  it('finds the active assignments of a node', () => {
    const all = [
      assignment('a1', 'n1', USER.id, []),
      assignment('a2', 'n1', USER.id, [], { status: 'revoked' }),
      assignment('a3', 'n2', USER.id, []),
    ];
    expect(activeOn('n1', all).map((a) => a.id)).toEqual(['a1']);
  });
});
