import { Routes } from '@angular/router';

import { adminOnly, signedIn, signedOut } from './core/guards';

// Each area loads lazily, so a user of the portal never downloads the admin screens. Only /login
// and /invite/{token} are open to someone who is not signed in.
export const routes: Routes = [
  {
    path: 'login',
    title: 'Sign in · gpulab',
    canActivate: [signedOut],
    loadComponent: () => import('./login/login').then((m) => m.Login),
  },
  {
    // The link in the invite email: {public_url}/invite/{token} (shared/API.md, /auth/invites).
    path: 'invite/:token',
    title: 'Accept your invite · gpulab',
    loadComponent: () => import('./portal/accept-invite/accept-invite').then((m) => m.AcceptInvite),
  },
  {
    path: 'admin',
    canActivate: [signedIn, adminOnly],
    loadChildren: () => import('./admin/admin.routes').then((m) => m.ADMIN_ROUTES),
  },
  {
    path: '',
    canActivate: [signedIn],
    loadChildren: () => import('./portal/portal.routes').then((m) => m.PORTAL_ROUTES),
  },
];
