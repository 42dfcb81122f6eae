import type { Assignment, Enrollment, Gpu, Node, User } from '../../api';
import { ADMIN, USER } from '../../testing/http.testing';

// Fixtures shared by the nodes specs (and the environments specs, which list nodes too).

export const BOB: User = {
  ...USER,
  id: '5b0b0b0b-3333-4a57-9d5e-3f1b9a1c2d4e',
  email: 'bob@lab.org',
  name: 'Bob',
};
export const PEOPLE: User[] = [ADMIN, USER, BOB];

export function gpu(index: number, extra: Partial<Gpu> = {}): Gpu {
  return {
    index,
    uuid: `GPU-${index}-aaaa`,
    name: 'NVIDIA A100-SXM4-80GB',
    memory_mb: 81920,
    mig_capable: true,
    mig_enabled: false,
    ...extra,
  };
}

export function node(hostname: string, extra: Partial<Node> = {}): Node {
  return {
    id: `id-${hostname}`,
    hostname,
    type: 'linux',
    management_ip: '192.0.2.10',
    ssh_port: 22,
    status: 'online',
    last_seen_at: '2030-01-01T00:00:00Z',
    agent_version: '1.4.0',
    hardware: {
      cpu_model: 'AMD EPYC 7543',
      cpu_cores: 32,
      ram_mb: 262144,
      gpus: [gpu(0), gpu(1)],
    },
    created_at: '2029-12-01T00:00:00Z',
    ...extra,
  };
}

export function assignment(
  id: string,
  nodeId: string,
  userId: string,
  gpus: Gpu[],
  extra: Partial<Assignment> = {},
): Assignment {
  return {
    id,
    node_id: nodeId,
    user_id: userId,
    environment_id: 'env-1',
    environment_name: 'teaching',
    node_hostname: `host-of-${nodeId}`,
    gpus: gpus.map((g) => ({ index: g.index, uuid: g.uuid, name: g.name, memory_mb: g.memory_mb })),
    cpus: 4,
    ram_mb: 16384,
    status: 'active',
    node_state: 'applied',
    node_message: null,
    placement: 'fixed',
    linux_username: 'u',
    created_at: '2030-01-01T00:00:00Z',
    ended_at: null,
    expires_at: null,
    ...extra,
  };
}

export const ENROLLMENT: Enrollment = {
  token: 'tok-123',
  expires_at: new Date(Date.now() + 24 * 3600_000).toISOString(),
  install_command:
    "{ curl -fsSL https://gpulab.lab.org/install-agent.sh && printf '%s\\n' tok-123; } | sudo bash -s -- --url https://gpulab.lab.org --ca-fingerprint ab12 --token-file -",
  ca_fingerprint: 'ab12'.repeat(16),
};

export function page<T>(items: T[]) {
  return { items, next_cursor: null };
}

/** Lets the app's promises and change detection settle. */
export async function settle(stable: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    await stable();
  }
}

/** The button whose visible text is exactly `text`, anywhere in the document (dialogs included). */
export function button(text: string): HTMLButtonElement | undefined {
  return Array.from(document.querySelectorAll<HTMLButtonElement>('button')).find(
    (b) => b.textContent?.replace(/\s+/g, ' ').trim() === text,
  );
}

/** The form control whose `<mat-label>` reads `label`, in the document (dialogs included). */
export function field<T extends HTMLElement = HTMLInputElement>(label: string): T {
  const labels = Array.from(document.querySelectorAll('mat-form-field'));
  const ff = labels.find((f) => f.querySelector('mat-label')?.textContent?.trim() === label);
  const control = ff?.querySelector<T>('input, mat-select');
  if (!control) {
    throw new Error(`no field labelled ${label}`);
  }
  return control;
}

export function typeInto(input: HTMLInputElement, value: string): void {
  input.value = value;
  input.dispatchEvent(new Event('input'));
  input.dispatchEvent(new Event('blur'));
}

/** Opens a mat-select and picks the option whose first line is `value`. */
export async function choose(
  select: HTMLElement,
  value: string,
  stable: () => Promise<unknown>,
): Promise<void> {
  select.click();
  await settle(stable);
  const option = Array.from(document.querySelectorAll<HTMLElement>('mat-option')).find(
    (o) => (o.querySelector('.choice')?.textContent ?? o.textContent)?.trim() === value,
  );
  if (!option) {
    throw new Error(`no option ${value}`);
  }
  option.click();
  await settle(stable);
}
