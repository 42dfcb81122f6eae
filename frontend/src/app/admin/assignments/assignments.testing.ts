import type { AssignedGpu, Assignment, Environment, Node, User } from '../../api';
import { ADMIN, USER } from '../../testing/http.testing';

// Shared by the assignments specs: a small lab, and a way to find controls as a person would.

const gpus = (n: number) =>
  Array.from({ length: n }, (_, index) => ({
    index,
    uuid: `GPU-${index}`,
    name: 'NVIDIA A100',
    memory_mb: 40960,
    mig_capable: index === 0,
    mig_enabled: false,
  }));

function node(id: string, hostname: string, count: number, status: Node['status']): Node {
  return {
    id,
    hostname,
    type: 'linux',
    management_ip: '10.0.0.1',
    ssh_port: 22,
    status,
    last_seen_at: '2030-01-01T00:00:00Z',
    agent_version: '1.0.0',
    created_at: '2030-01-01T00:00:00Z',
    hardware: { cpu_model: 'EPYC', cpu_cores: 64, ram_mb: 262144, gpus: gpus(count) },
  };
}

export const GPU01 = node('a1a1a1a1-0000-4000-8000-000000000001', 'gpu-01', 8, 'online');
export const GPU02 = node('a1a1a1a1-0000-4000-8000-000000000002', 'gpu-02', 2, 'offline');
export const GONE = node('a1a1a1a1-0000-4000-8000-000000000003', 'gpu-03', 4, 'revoked');

export const ML: Environment = {
  id: 'e1e1e1e1-0000-4000-8000-000000000001',
  name: 'ml-lab',
  enforcement_mode: 'cgroup',
  tunnel_provider: 'ssh_proxy_jump',
  default_cpus: 8,
  default_ram_mb: 32768,
  default_expiry_hours: 24,
  self_service: 'off',
  max_hours: null,
  node_ids: [GPU02.id, GPU01.id, GONE.id],
  created_at: '2030-01-01T00:00:00Z',
};

export const QUICK: Environment = {
  ...ML,
  id: 'e1e1e1e1-0000-4000-8000-000000000002',
  name: 'quick',
  default_cpus: 0,
  default_ram_mb: 0,
  default_expiry_hours: null,
  node_ids: [GPU02.id],
};

export const INVITED: User = {
  ...USER,
  id: '3b1f9c2a-3333-4a57-9d5e-3f1b9a1c2d4e',
  email: 'linus@lab.org',
  name: null,
  status: 'invited',
};

export const USERS: User[] = [USER, ADMIN, INVITED];
export const NODES: Node[] = [GPU01, GPU02, GONE];
export const ENVIRONMENTS: Environment[] = [ML, QUICK];

/** An assigned GPU as the server describes it (model and memory unknown here). */
export function gpu(index: number, uuid: string): AssignedGpu {
  return { index, uuid, name: null, memory_mb: null };
}

export function assignment(over: Partial<Assignment> = {}): Assignment {
  return {
    id: 'b2b2b2b2-0000-4000-8000-000000000001',
    user_id: ADMIN.id,
    environment_id: ML.id,
    environment_name: ML.name,
    node_id: GPU01.id,
    node_hostname: GPU01.hostname,
    node_state: 'applied',
    node_message: null,
    placement: 'dynamic',
    gpus: [gpu(0, 'GPU-0'), gpu(1, 'GPU-1')],
    cpus: 8,
    ram_mb: 32768,
    linux_username: 'grace',
    status: 'active',
    created_at: '2030-01-01T10:00:00Z',
    expires_at: '2030-01-02T10:00:00Z',
    ended_at: null,
    ...over,
  };
}

/** The button whose visible text is exactly `text`. */
export function button(root: ParentNode, text: string): HTMLButtonElement | undefined {
  return Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find(
    (b) => b.textContent?.trim() === text,
  );
}

/** The input of the form field labelled `label`. */
export function inputLabelled(root: ParentNode, label: string): HTMLInputElement {
  const field = Array.from(root.querySelectorAll('mat-form-field')).find(
    (f) => f.querySelector('mat-label')?.textContent?.trim() === label,
  );
  const input = field?.querySelector<HTMLInputElement>('input');
  if (!input) {
    throw new Error(`no input labelled ${label}`);
  }
  return input;
}

export function typeInto(input: HTMLInputElement, value: string): void {
  input.value = value;
  input.dispatchEvent(new Event('input'));
}
