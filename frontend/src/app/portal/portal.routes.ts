import { Routes } from '@angular/router';

export const PORTAL_ROUTES: Routes = [
  {
    path: '',
    title: 'Portal · gpulab',
    loadComponent: () => import('./portal-home').then((m) => m.PortalHome),
  },
];
