import { Routes } from '@angular/router';

export const PORTAL_ROUTES: Routes = [
  {
    path: '',
    title: 'Portal · gpulab',
    loadComponent: () => import('./portal-home').then((m) => m.PortalHome),
  },
  {
    // The link in the invite email: {public_url}/invite/{token} (shared/API.md, /auth/invites).
    path: 'invite/:token',
    title: 'Accept your invite · gpulab',
    loadComponent: () => import('./accept-invite/accept-invite').then((m) => m.AcceptInvite),
  },
];
