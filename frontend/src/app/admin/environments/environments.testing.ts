import type { Environment } from '../../api';

// Fixtures shared by the environments specs.

export const TEACHING: Environment = {
  id: 'env-1',
  name: 'teaching',
  enforcement_mode: 'cgroup',
  tunnel_provider: 'ssh_proxy_jump',
  default_cpus: 4,
  default_ram_mb: 16384,
  default_expiry_hours: 24,
  self_service: 'off',
  max_hours: null,
  node_ids: ['id-gpu-01'],
  created_at: '2030-01-01T00:00:00Z',
};
