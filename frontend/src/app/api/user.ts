// The `User` shape of shared/API.md ("REST, under /api/v1"); hand-written until the OpenAPI client
// is generated.

export type Role = 'user' | 'admin';
export type UserStatus = 'invited' | 'active' | 'disabled';

export interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  status: UserStatus;
  has_ssh_key: boolean;
  /** RFC 3339, UTC. */
  created_at: string;
}
