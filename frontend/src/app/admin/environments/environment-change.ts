import type {
  SelfServiceEnvironment as Environment,
  SelfServiceEnvironmentChange as EnvironmentChange,
  SelfServiceEnvironmentFields as EnvironmentFields,
  SelfServiceMode,
} from '../../api';
import type { EnforcementMode, TunnelProvider } from './modes';

// The Environment form's value and what it sends: everything for a new one, only what changed for
// an edit (PATCH changes only the fields given; `default_expiry_hours: null` means no expiry).

export interface EnvironmentFormValue {
  name: string;
  enforcement_mode: EnforcementMode;
  tunnel_provider: TunnelProvider;
  default_cpus: number | null;
  default_ram_mb: number | null;
  /** null (an empty field): assignments do not expire unless they are given an end. */
  default_expiry_hours: number | null;
  /** Who may ask for its GPUs themselves (shared/API.md, "Self-service and fair use"). */
  self_service: SelfServiceMode;
  /** The longest self-service request in hours; null (an empty field): no limit. */
  max_hours: number | null;
}

/** What the form holds for a new Environment, or for editing `env`. */
export function formValueOf(env?: Environment): EnvironmentFormValue {
  return {
    name: env?.name ?? '',
    enforcement_mode: env?.enforcement_mode ?? 'soft',
    tunnel_provider: env?.tunnel_provider ?? 'ssh_proxy_jump',
    default_cpus: env?.default_cpus ?? 0,
    default_ram_mb: env?.default_ram_mb ?? 0,
    default_expiry_hours: env?.default_expiry_hours ?? null,
    self_service: env?.self_service ?? 'off',
    max_hours: env?.max_hours ?? null,
  };
}

/** The body of `POST /environments`. */
export function newFields(value: EnvironmentFormValue): EnvironmentFields {
  return {
    name: value.name.trim(),
    enforcement_mode: value.enforcement_mode,
    tunnel_provider: value.tunnel_provider,
    default_cpus: value.default_cpus ?? 0,
    default_ram_mb: value.default_ram_mb ?? 0,
    default_expiry_hours: value.default_expiry_hours ?? null,
    self_service: value.self_service,
    max_hours: value.max_hours,
  };
}

/** The body of `PATCH /environments/{id}`: the fields whose value differs from `env`'s. */
export function changedFields(env: Environment, value: EnvironmentFormValue): EnvironmentChange {
  const next = allFields(value);
  const before = allFields(formValueOf(env));
  const change: EnvironmentChange = {};
  for (const key of Object.keys(next) as (keyof EnvironmentFields)[]) {
    if (next[key] !== before[key]) {
      (change as Record<string, unknown>)[key] = next[key];
    }
  }
  return change;
}

/** Every field, the self-service ones included whatever their value. */
function allFields(value: EnvironmentFormValue): Required<EnvironmentFields> {
  return {
    ...newFields(value),
    default_expiry_hours: value.default_expiry_hours ?? null,
    self_service: value.self_service,
    max_hours: value.max_hours ?? null,
  } as Required<EnvironmentFields>;
}
