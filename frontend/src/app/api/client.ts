import { HttpClient, HttpParams, HttpResponse } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import type { paths } from './generated/schema';

// A typed face over Angular's HttpClient for the paths of the generated schema: the path, its
// parameters, the body and the reply all come from the gateway's OpenAPI document
// (scripts/gen-api-client.sh, docs/adr/0015-web-app.md). Nothing here names a request or reply shape.

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** The paths that have an operation for this method. */
export type PathsFor<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends object ? P : never;
}[keyof paths];

type Operation<P extends keyof paths, M extends Method> = Extract<paths[P][M], object>;
type ParametersOf<O> = O extends { parameters: infer X } ? X : never;
type PathParams<O> = ParametersOf<O> extends { path: infer X } ? X : never;
type QueryParams<O> = ParametersOf<O> extends { query?: infer X } ? X : never;
type BodyOf<O> = O extends { requestBody: { content: { 'application/json': infer B } } }
  ? B
  : never;
type Json<R> = R extends { content: { 'application/json': infer B } } ? B : void;
type ReplyOf<O> = O extends { responses: infer R }
  ? R extends { 200: infer S }
    ? Json<S>
    : R extends { 201: infer S }
      ? Json<S>
      : R extends { 202: infer S }
        ? Json<S>
        : void
  : never;

type IsNever<T> = [T] extends [never] ? true : false;

/** What a call takes besides its path: the path's parameters, the query and the JSON body. */
export type Options<O> = (IsNever<PathParams<O>> extends true ? unknown : { path: PathParams<O> }) &
  (IsNever<QueryParams<O>> extends true ? unknown : { query?: QueryParams<O> }) &
  (IsNever<BodyOf<O>> extends true ? unknown : { body: BodyOf<O> });

// Options can be left out only when nothing in them is required.
type Args<O> =
  IsNever<PathParams<O>> extends true
    ? IsNever<BodyOf<O>> extends true
      ? [options?: Options<O>]
      : [options: Options<O>]
    : [options: Options<O>];

/** The reply of a path and method: its 200, 201 or 202 JSON body, or void (204). */
export type Reply<P extends keyof paths, M extends Method> = ReplyOf<Operation<P, M>>;
/** The JSON body a path and method take. */
export type Body<P extends keyof paths, M extends Method> = BodyOf<Operation<P, M>>;
/** The query a path and method take. */
export type Query<P extends keyof paths, M extends Method> = NonNullable<
  QueryParams<Operation<P, M>>
>;

interface RawOptions {
  path?: Record<string, string>;
  query?: Record<string, unknown>;
  body?: unknown;
}

/** The gateway's REST API, typed by its OpenAPI document. Errors arrive as HttpErrorResponse. */
@Injectable({ providedIn: 'root' })
export class Api {
  private readonly http = inject(HttpClient);

  get<P extends PathsFor<'get'>>(path: P, ...args: Args<Operation<P, 'get'>>) {
    return this.call<Reply<P, 'get'>>('GET', path, args[0]);
  }

  post<P extends PathsFor<'post'>>(path: P, ...args: Args<Operation<P, 'post'>>) {
    return this.call<Reply<P, 'post'>>('POST', path, args[0]);
  }

  put<P extends PathsFor<'put'>>(path: P, ...args: Args<Operation<P, 'put'>>) {
    return this.call<Reply<P, 'put'>>('PUT', path, args[0]);
  }

  patch<P extends PathsFor<'patch'>>(path: P, ...args: Args<Operation<P, 'patch'>>) {
    return this.call<Reply<P, 'patch'>>('PATCH', path, args[0]);
  }

  delete<P extends PathsFor<'delete'>>(path: P, ...args: Args<Operation<P, 'delete'>>) {
    return this.call<Reply<P, 'delete'>>('DELETE', path, args[0]);
  }

  /** A GET that also hands over the reply's headers (`GET /auth/me` carries the CSRF token). */
  getResponse<P extends PathsFor<'get'>>(
    path: P,
    ...args: Args<Operation<P, 'get'>>
  ): Observable<HttpResponse<Reply<P, 'get'>>> {
    const raw = (args[0] ?? {}) as RawOptions;
    return this.http.request<Reply<P, 'get'>>('GET', buildUrl(path, raw.path), {
      params: buildParams(raw.query),
      observe: 'response',
    });
  }

  private call<R>(method: string, path: string, options: unknown): Observable<R> {
    const raw = (options ?? {}) as RawOptions;
    return this.http.request<R>(method, buildUrl(path, raw.path), {
      params: buildParams(raw.query),
      body: raw.body,
    });
  }
}

/** The path with each `{name}` replaced by its value, encoded as one path segment. */
export function buildUrl(template: string, values: Record<string, string> = {}): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) {
      throw new Error(`${template}: no value for {${name}}`);
    }
    return encodeURIComponent(value);
  });
}

/** The query without the parameters left unset (undefined, null or ''). */
export function buildParams(query: Record<string, unknown> = {}): HttpParams {
  let params = new HttpParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') {
      params = params.set(key, String(value));
    }
  }
  return params;
}
