import type { Environment } from '../../api';
import { changedFields, formValueOf, newFields } from './environment-change';

const ENV: Environment = {
  id: 'env-1',
  name: 'teaching',
  enforcement_mode: 'cgroup',
  tunnel_provider: 'ssh_proxy_jump',
  default_cpus: 4,
  default_ram_mb: 16384,
  default_expiry_hours: 24,
  self_service: 'off',
  max_hours: null,
  node_ids: [],
  created_at: '2030-01-01T00:00:00Z',
};

describe('Environment form values', () => {
  it('starts a new Environment as soft, over the SSH jump host, with no limits and no expiry', () => {
    expect(newFields(formValueOf())).toEqual({
      name: '',
      enforcement_mode: 'soft',
      tunnel_provider: 'ssh_proxy_jump',
      default_cpus: 0,
      default_ram_mb: 0,
      default_expiry_hours: null,
      self_service: 'off',
      max_hours: null,
    });
  });

  it('sends only the fields that changed, and null to clear the expiry', () => {
    const value = { ...formValueOf(ENV), name: ' teaching-2 ', default_expiry_hours: null };
    expect(changedFields(ENV, value)).toEqual({ name: 'teaching-2', default_expiry_hours: null });
    expect(changedFields(ENV, formValueOf(ENV))).toEqual({});
    expect(changedFields(ENV, { ...formValueOf(ENV), enforcement_mode: 'mig' })).toEqual({
      enforcement_mode: 'mig',
    });
  });

  it('reads an Environment without an expiry as an empty field', () => {
    expect(
      formValueOf({ ...ENV, default_expiry_hours: undefined }).default_expiry_hours,
    ).toBeNull();
  });
});
