import type { Environment, SelfServiceMode } from '../../api';

// What each enforcement mode and tunnel provider means, in one sentence each: shown next to the
// choice in the form and next to the value in the list, so that both say the same thing.

export type EnforcementMode = Environment['enforcement_mode'];
export type TunnelProvider = Environment['tunnel_provider'];

export interface Choice<T extends string> {
  value: T;
  sentence: string;
}

export const ENFORCEMENT_MODES: readonly Choice<EnforcementMode>[] = [
  {
    value: 'soft',
    sentence: 'No hard isolation, for trusted labs: the GPUs are set with CUDA_VISIBLE_DEVICES.',
  },
  {
    value: 'cgroup',
    sentence: 'CPU and RAM limits, and only the assigned GPU devices are visible.',
  },
  {
    value: 'mig',
    sentence: 'An NVIDIA MIG instance per assigned GPU; needs MIG-capable GPUs.',
  },
  {
    value: 'container',
    sentence: 'A container per assignment, with the GPUs passed through.',
  },
];

export const TUNNEL_PROVIDERS: readonly Choice<TunnelProvider>[] = [
  {
    value: 'ssh_proxy_jump',
    sentence: 'Users reach the node through an SSH jump host; nothing else to run.',
  },
  {
    value: 'netbird',
    sentence:
      'Users join a NetBird network with a one-off setup key; needs the NetBird API settings on the server.',
  },
];

/** The sentence for a mode or provider. */
export function explain(value: EnforcementMode | TunnelProvider | SelfServiceMode): string {
  return (
    [...ENFORCEMENT_MODES, ...TUNNEL_PROVIDERS, ...SELF_SERVICE_MODES].find(
      (c) => c.value === value,
    )?.sentence ?? ''
  );
}

export const SELF_SERVICE_MODES: readonly Choice<SelfServiceMode>[] = [
  { value: 'off', sentence: 'Only admins assign its GPUs.' },
  { value: 'approval', sentence: 'Users request GPUs; an admin approves or denies each request.' },
  {
    value: 'auto',
    sentence: 'Users request GPUs and get them at once when free, else they queue.',
  },
];
