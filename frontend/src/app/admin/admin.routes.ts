import { Routes } from '@angular/router';

export const ADMIN_ROUTES: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'nodes' },
  {
    path: 'nodes',
    title: 'Nodes · gpulab',
    loadComponent: () => import('./nodes/nodes').then((m) => m.Nodes),
  },
  {
    path: 'environments',
    title: 'Environments · gpulab',
    loadComponent: () => import('./environments/environments').then((m) => m.Environments),
  },
  {
    path: 'users',
    title: 'Users · gpulab',
    loadComponent: () => import('./users/users').then((m) => m.Users),
  },
  {
    path: 'assignments',
    title: 'Assignments · gpulab',
    loadComponent: () => import('./assignments/assignments').then((m) => m.Assignments),
  },
  {
    path: 'requests',
    title: 'Requests · gpulab',
    loadComponent: () => import('./requests/requests-inbox').then((m) => m.RequestsInbox),
  },
  {
    path: 'groups',
    title: 'Groups · gpulab',
    loadComponent: () => import('./groups/groups').then((m) => m.Groups),
  },
  {
    path: 'quotas',
    title: 'Quotas · gpulab',
    loadComponent: () => import('./quotas/quotas').then((m) => m.Quotas),
  },
  {
    path: 'usage',
    title: 'Usage · gpulab',
    loadComponent: () => import('./usage/usage').then((m) => m.Usage),
  },
  {
    path: 'audit',
    title: 'Audit log · gpulab',
    loadComponent: () => import('./audit/audit').then((m) => m.Audit),
  },
  {
    path: '**',
    title: 'Not found · gpulab',
    loadComponent: () => import('../shared/not-found').then((m) => m.NotFound),
  },
];
