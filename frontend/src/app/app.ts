import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';

import { Auth } from './core/auth';

interface NavLink {
  path: string;
  label: string;
  exact?: boolean;
}

const PORTAL_LINKS: NavLink[] = [
  { path: '/', label: 'My GPUs', exact: true },
  { path: '/keys', label: 'SSH keys' },
];

const ADMIN_LINKS: NavLink[] = [
  { path: '/admin/nodes', label: 'Nodes' },
  { path: '/admin/environments', label: 'Environments' },
  { path: '/admin/users', label: 'Users' },
  { path: '/admin/assignments', label: 'Assignments' },
  { path: '/admin/audit', label: 'Audit log' },
];

/** The shell: header, navigation for who is signed in, log out, and the routed page. */
@Component({
  selector: 'app-root',
  imports: [RouterOutlet, RouterLink, RouterLinkActive, MatButtonModule],
  templateUrl: './app.html',
  styleUrl: './app.scss',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class App {
  protected readonly auth = inject(Auth);
  protected readonly portalLinks = PORTAL_LINKS;
  protected readonly adminLinks = computed(() => (this.auth.isAdmin() ? ADMIN_LINKS : []));

  protected logout(): void {
    void this.auth.logout();
  }
}
