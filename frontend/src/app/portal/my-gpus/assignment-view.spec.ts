import type { Access, AssignedGpu } from '../../api';
import {
  agentState,
  cpuLimit,
  endedWord,
  gpuSummary,
  gpuTitle,
  netbirdCommand,
  ramLimit,
  sshAlias,
} from './assignment-view';
import { ACTIVE } from './my-gpus.testing';

const A100: AssignedGpu = {
  index: 0,
  uuid: 'GPU-1',
  name: 'NVIDIA A100-SXM4-80GB',
  memory_mb: 81920,
};

describe('assignment view', () => {
  it('names a GPU by index, model and memory when known', () => {
    expect(gpuTitle(A100)).toBe('GPU 0 · NVIDIA A100-SXM4-80GB · 80 GiB');
    expect(gpuTitle({ index: 3, uuid: 'GPU-3', name: null, memory_mb: null })).toBe('GPU 3');
  });

  it('sums GPUs up for an ended assignment', () => {
    expect(gpuSummary([A100, { ...A100, index: 1, uuid: 'GPU-2' }])).toBe(
      '2 × NVIDIA A100-SXM4-80GB',
    );
    expect(
      gpuSummary([
        { ...A100, name: null },
        { ...A100, index: 1, name: 'other' },
      ]),
    ).toBe('GPUs 0, 1');
    expect(gpuSummary([])).toBe('no GPUs');
  });

  it('reads 0 as no limit', () => {
    expect(cpuLimit(0)).toBe('no limit');
    expect(cpuLimit(1)).toBe('1 core');
    expect(cpuLimit(8)).toBe('8 cores');
    expect(ramLimit(0)).toBe('no limit');
    expect(ramLimit(65536)).toBe('64 GiB');
  });

  it('words the agent state', () => {
    // A state this app does not know yet (a newer server) shows nothing rather than a guess.
    expect(agentState({ ...ACTIVE, node_state: 'paused' } as unknown as typeof ACTIVE)).toBeNull();
    expect(agentState({ ...ACTIVE, node_state: 'pending' })?.text).toBe(
      'Being set up on the node…',
    );
    expect(agentState({ ...ACTIVE, node_state: 'applied' })?.text).toBe('Ready');
    expect(
      agentState({
        ...ACTIVE,
        node_state: 'failed',
        node_message: 'nvidia-smi not found',
      })?.text,
    ).toBe('Setting it up on the node failed: nvidia-smi not found');
  });

  it('words the end of an assignment', () => {
    expect(endedWord('revoked')).toBe('Revoked');
    expect(endedWord('expired')).toBe('Expired');
    expect(endedWord('released')).toBe('Released');
  });

  it('builds the NetBird command, quoting only what a shell would misread', () => {
    const access: Access = {
      provider: 'netbird',
      setup_key: 'A1B2C3D4-0000-1111-2222-333344445555',
      management_url: 'https://netbird.lab.org:33073',
      expires_at: null,
    };
    expect(netbirdCommand(access)).toBe(
      'netbird up --setup-key A1B2C3D4-0000-1111-2222-333344445555 --management-url https://netbird.lab.org:33073',
    );
    expect(netbirdCommand({ ...access, management_url: null, setup_key: "it's" })).toBe(
      "netbird up --setup-key 'it'\\''s'",
    );
  });

  it("finds the config's Host alias", () => {
    expect(sshAlias('# c\nHost gpulab-gpu-01\n    HostName 10.0.0.5\n')).toBe('gpulab-gpu-01');
    expect(sshAlias(null)).toBeNull();
  });
});
