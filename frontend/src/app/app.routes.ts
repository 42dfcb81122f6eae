import { Routes } from '@angular/router';

// Each area loads lazily, so a user of the portal never downloads the admin screens.
export const routes: Routes = [
  { path: '', loadChildren: () => import('./portal/portal.routes').then((m) => m.PORTAL_ROUTES) },
  { path: 'admin', loadChildren: () => import('./admin/admin.routes').then((m) => m.ADMIN_ROUTES) },
  {
    path: '**',
    title: 'Not found · gpulab',
    loadComponent: () => import('./shared/not-found').then((m) => m.NotFound),
  },
];
