import type { Access, AssignedGpu, Assignment } from '../../api';
import { formatMb } from '../../shared/format';

// How "My GPUs" words an assignment: pure functions of what the server sent.

/** Where the agent stands with an assignment on its node (shared/API.md `Assignment.node_state`). */
export interface AgentState {
  kind: 'pending' | 'applied' | 'failed';
  /** In words, never by colour alone. */
  text: string;
}

/** The node agent's report on the assignment: `node_state` and `node_message` (shared/API.md). */
export function agentState(a: Assignment): AgentState | null {
  const { node_state: state, node_message: message } = a;
  switch (state) {
    case 'pending':
      return { kind: 'pending', text: 'Being set up on the node…' };
    case 'applied':
      return { kind: 'applied', text: 'Ready' };
    case 'failed': {
      const why = message?.trim() || 'the node gave no reason';
      return { kind: 'failed', text: `Setting it up on the node failed: ${why}` };
    }
    default:
      return null;
  }
}

/** "GPU 0 · NVIDIA A100-SXM4-80GB · 80 GiB": the model and memory when the node reported them. */
export function gpuTitle(gpu: AssignedGpu): string {
  const parts = [`GPU ${gpu.index}`];
  if (gpu.name) {
    parts.push(gpu.name);
  }
  if (gpu.memory_mb) {
    parts.push(formatMb(gpu.memory_mb));
  }
  return parts.join(' · ');
}

/** "2 × NVIDIA A100-SXM4-80GB", "GPUs 0, 1": short, for an ended assignment's line. */
export function gpuSummary(gpus: readonly AssignedGpu[]): string {
  if (!gpus.length) {
    return 'no GPUs';
  }
  const names = new Set(gpus.map((g) => g.name));
  const [name] = names;
  if (names.size === 1 && name) {
    return `${gpus.length} × ${name}`;
  }
  return `GPU${gpus.length > 1 ? 's' : ''} ${gpus.map((g) => g.index).join(', ')}`;
}

/** CPU cores: 0 means no limit (docs/api.md, issue 5). */
export function cpuLimit(cpus: number): string {
  if (cpus === 0) {
    return 'no limit';
  }
  return `${cpus} core${cpus === 1 ? '' : 's'}`;
}

/** RAM in MiB: 0 means no limit. */
export function ramLimit(ramMb: number): string {
  return formatMb(ramMb, 'no limit');
}

/** An ended assignment's status, as a word (`released` comes with self-service, shared/API.md). */
export function endedWord(status: string): string {
  switch (status) {
    case 'revoked':
      return 'Revoked';
    case 'expired':
      return 'Expired';
    case 'released':
      return 'Released';
    default:
      return status.charAt(0).toUpperCase() + status.slice(1);
  }
}

// What a POSIX shell reads as one plain word; anything else is single-quoted.
const PLAIN_WORD = /^[A-Za-z0-9@%+=:,./_-]+$/;

function shellWord(value: string): string {
  return PLAIN_WORD.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `netbird up --setup-key <key> --management-url <url>`, ready to paste. */
export function netbirdCommand(access: Access): string {
  const words = ['netbird', 'up', '--setup-key', shellWord(access.setup_key ?? '')];
  if (access.management_url) {
    words.push('--management-url', shellWord(access.management_url));
  }
  return words.join(' ');
}

/** The `Host` alias of an SSH config block (`gpulab-gpu-01`), to say "then run ssh <alias>". */
export function sshAlias(config: string | null | undefined): string | null {
  const match = /^Host[ \t]+(\S+)[ \t]*$/m.exec(config ?? '');
  return match ? match[1] : null;
}
