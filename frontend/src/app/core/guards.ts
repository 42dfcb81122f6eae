import { inject } from '@angular/core';
import { CanActivateFn, Router } from '@angular/router';

import { Auth, NEXT_PARAM, safeNext } from './auth';

// Each guard injects before its first await: inject() works only in the synchronous part.

/** Pages for signed-in people: anyone else goes to /login, and comes back here afterwards. */
export const signedIn: CanActivateFn = async (_route, state) => {
  const auth = inject(Auth);
  const router = inject(Router);
  try {
    if (await auth.whoAmI()) {
      return true;
    }
  } catch {
    // The gateway did not answer: the sign-in page says so when it tries.
  }
  return router.createUrlTree(['/login'], { queryParams: { [NEXT_PARAM]: state.url } });
};

/**
 * The dashboard: a `user` gets the portal with a short "admins only" message instead; someone not
 * signed in goes to /login like everywhere else (guards of one route run side by side, so this one
 * must not assume signedIn ran first).
 */
export const adminOnly: CanActivateFn = async (_route, state) => {
  const auth = inject(Auth);
  const router = inject(Router);
  const user = await auth.whoAmI().catch(() => null);
  if (user?.role === 'admin') {
    return true;
  }
  if (!user) {
    return router.createUrlTree(['/login'], { queryParams: { [NEXT_PARAM]: state.url } });
  }
  auth.notice.set('That page is for admins only. Here is your portal.');
  return router.createUrlTree(['/']);
};

/** /login: someone already signed in goes straight on. */
export const signedOut: CanActivateFn = async (route) => {
  const auth = inject(Auth);
  const router = inject(Router);
  const user = await auth.whoAmI().catch(() => null);
  return user ? router.parseUrl(safeNext(route.queryParamMap.get(NEXT_PARAM))) : true;
};
