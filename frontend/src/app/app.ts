import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { NavigationEnd, Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
import { filter, map } from 'rxjs';

import { Auth } from './core/auth';

interface NavLink {
  path: string;
  label: string;
  /** The addresses (path prefixes) where this link is the current page. */
  current?: string[];
}

const PORTAL_LINKS: NavLink[] = [
  // An assignment's own address (linked from the mails) is "My GPUs" with that assignment open.
  { path: '/', label: 'My GPUs', current: ['/assignments/'] },
  { path: '/request', label: 'Request GPUs' },
  { path: '/requests', label: 'My requests' },
  { path: '/keys', label: 'SSH keys', current: ['/keys'] },
];

const ADMIN_LINKS: NavLink[] = [
  { path: '/admin/nodes', label: 'Nodes' },
  { path: '/admin/environments', label: 'Environments' },
  { path: '/admin/users', label: 'Users' },
  { path: '/admin/assignments', label: 'Assignments' },
  { path: '/admin/requests', label: 'Requests' },
  { path: '/admin/groups', label: 'Groups' },
  { path: '/admin/quotas', label: 'Quotas' },
  { path: '/admin/usage', label: 'Usage' },
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
  private readonly url = toSignal(
    inject(Router).events.pipe(
      filter((e): e is NavigationEnd => e instanceof NavigationEnd),
      map((e) => e.urlAfterRedirects.split(/[?#]/)[0]),
    ),
    { initialValue: '' },
  );

  protected isCurrent(link: NavLink): boolean {
    const url = this.url();
    return url === link.path || (link.current ?? []).some((prefix) => url.startsWith(prefix));
  }

  protected logout(): void {
    void this.auth.logout();
  }
}
