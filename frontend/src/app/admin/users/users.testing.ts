import { HttpTestingController, TestRequest } from '@angular/common/http/testing';

// Shared by the admin specs whose lists poll.

type Match = Parameters<HttpTestingController['match']>[0];

/**
 * The newest open request that matches, waiting up to a second for it. A list that polls may have
 * asked once more (every 3 s) before a change made it ask again: the change's request cancels the
 * poll's, and only the newest one is answered.
 */
export async function latestRequest(
  http: HttpTestingController,
  match: Match,
): Promise<TestRequest> {
  for (let i = 0; i < 100; i++) {
    const open = http.match(match).filter((req) => !req.cancelled);
    if (open.length > 0) {
      return open[open.length - 1];
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no open request matched');
}
