/**
 * Every REST call goes to the same origin under this prefix: the gateway serves the app and the API
 * together, and `ng serve` forwards it through proxy.conf.json (docs: shared/API.md, "REST, under /api/v1").
 */
export const API_BASE = '/api/v1';
