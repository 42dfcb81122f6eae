import { Routes } from '@angular/router';

export const PORTAL_ROUTES: Routes = [
  {
    path: '',
    pathMatch: 'full',
    title: 'My GPUs · gpulab',
    loadComponent: () => import('./my-gpus/my-gpus').then((m) => m.MyGpus),
  },
  {
    // Linked from the assignment mails: the same page, that assignment opened and in view.
    path: 'assignments/:id',
    title: 'My GPUs · gpulab',
    loadComponent: () => import('./my-gpus/my-gpus').then((m) => m.MyGpus),
  },
  {
    path: 'request',
    title: 'Request GPUs · gpulab',
    loadComponent: () => import('./request/request-gpus').then((m) => m.RequestGpus),
  },
  {
    path: 'requests',
    title: 'My requests · gpulab',
    loadComponent: () => import('./requests/my-requests').then((m) => m.MyRequests),
  },
  {
    path: 'keys',
    title: 'SSH keys · gpulab',
    loadComponent: () => import('./keys/keys').then((m) => m.Keys),
  },
  {
    path: '**',
    title: 'Not found · gpulab',
    loadComponent: () => import('../shared/not-found').then((m) => m.NotFound),
  },
];
