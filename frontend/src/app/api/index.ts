export { API_BASE } from './api-base';
export * from './client';
export type * from './generated/schema';
export * from './healthz';
export * from './invites-api';
export * from './problem';
export * from './self-service';
