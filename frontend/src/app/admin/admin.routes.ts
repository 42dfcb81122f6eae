import { Routes } from '@angular/router';

export const ADMIN_ROUTES: Routes = [
  {
    path: '',
    title: 'Admin · gpulab',
    loadComponent: () => import('./admin-home').then((m) => m.AdminHome),
  },
];
