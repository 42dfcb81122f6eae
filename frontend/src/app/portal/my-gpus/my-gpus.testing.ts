import type { Access, Assignment } from '../../api';
import { USER } from '../../testing/http.testing';

// Replies of /me/assignments and /me/assignments/{id}/access for the "My GPUs" specs, shaped as the
// scheduler writes them (services/scheduler access/ssh.py for the SSH config).

export const ACTIVE: Assignment = {
  id: 'a1a1a1a1-0000-4000-8000-000000000001',
  user_id: USER.id,
  environment_id: 'e1e1e1e1-0000-4000-8000-000000000001',
  environment_name: 'Deep learning',
  node_id: 'n1n1n1n1-0000-4000-8000-000000000001',
  node_hostname: 'gpu-01.lab',
  node_state: 'applied',
  node_message: null,
  placement: 'dynamic',
  gpus: [
    {
      index: 0,
      uuid: 'GPU-5c1d6a3e-1111-2222-3333-444455556666',
      name: 'NVIDIA A100-SXM4-80GB',
      memory_mb: 81920,
    },
    {
      index: 1,
      uuid: 'GPU-5c1d6a3e-7777-8888-9999-000011112222',
      name: 'NVIDIA A100-SXM4-80GB',
      memory_mb: 81920,
    },
  ],
  cpus: 16,
  ram_mb: 131072,
  linux_username: 'ada',
  status: 'active',
  created_at: '2030-01-01T00:00:00Z',
  expires_at: '2099-01-08T00:00:00Z',
  ended_at: null,
};

export const ACTIVE_NETBIRD: Assignment = {
  ...ACTIVE,
  id: 'a1a1a1a1-0000-4000-8000-000000000002',
  node_id: 'n1n1n1n1-0000-4000-8000-000000000002',
  node_hostname: 'gpu-02.lab',
  environment_name: 'Remote lab',
  gpus: [{ index: 3, uuid: 'GPU-0000-3', name: null, memory_mb: null }],
  cpus: 0,
  ram_mb: 0,
  expires_at: null,
  created_at: '2030-01-02T00:00:00Z',
};

export const REVOKED: Assignment = {
  ...ACTIVE,
  id: 'a1a1a1a1-0000-4000-8000-000000000003',
  node_hostname: 'gpu-03.lab',
  status: 'revoked',
  ended_at: '2030-01-03T10:00:00Z',
};

export const EXPIRED: Assignment = {
  ...ACTIVE,
  id: 'a1a1a1a1-0000-4000-8000-000000000004',
  node_hostname: 'gpu-04.lab',
  status: 'expired',
  ended_at: '2030-01-04T10:00:00Z',
};

export const SSH_ACCESS: Access = {
  provider: 'ssh_proxy_jump',
  ssh_config: [
    `# gpulab: assignment ${ACTIVE.id} on gpu-01.lab, until 2099-01-08T00:00:00+00:00`,
    '# ssh offers your default keys (~/.ssh/id_ed25519, ...). If the private key of the public key',
    '# you uploaded is elsewhere, add to this block:  IdentityFile ~/.ssh/<that key>',
    'Host gpulab-gpu-01.lab',
    '    HostName 10.0.0.11',
    '    User ada',
    '    ProxyJump jump@bastion.lab.org:2222',
    '',
  ].join('\n'),
  ssh_command: 'ssh -J jump@bastion.lab.org:2222 ada@10.0.0.11',
  expires_at: ACTIVE.expires_at,
};

export const NETBIRD_ACCESS: Access = {
  provider: 'netbird',
  setup_key: 'A1B2C3D4-0000-1111-2222-333344445555',
  management_url: 'https://netbird.lab.org:33073',
  expires_at: '2099-01-01T01:00:00Z',
};

export const list = (...items: Assignment[]) => ({ items, next_cursor: null });
