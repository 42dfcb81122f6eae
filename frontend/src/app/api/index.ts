export { API_BASE } from './api-base';
export * from './healthz';
