import { ENFORCEMENT_MODES, TUNNEL_PROVIDERS, explain } from './modes';

describe('mode descriptions', () => {
  it('explain every enforcement mode and tunnel provider the API knows, in one sentence each', () => {
    expect(ENFORCEMENT_MODES.map((m) => m.value)).toEqual(['soft', 'cgroup', 'mig', 'container']);
    expect(TUNNEL_PROVIDERS.map((p) => p.value)).toEqual(['ssh_proxy_jump', 'netbird']);
    for (const choice of [...ENFORCEMENT_MODES, ...TUNNEL_PROVIDERS]) {
      expect(choice.sentence).toMatch(/^[A-Z][^.]*\.$/);
      expect(explain(choice.value)).toBe(choice.sentence);
    }
    expect(explain('soft')).toContain('CUDA_VISIBLE_DEVICES');
    expect(explain('mig')).toContain('MIG-capable');
    expect(explain('netbird')).toContain('setup key');
  });
});
