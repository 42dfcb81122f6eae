export { API_BASE } from './api-base';
export * from './healthz';
export * from './invites-api';
export * from './problem';
export * from './user';
