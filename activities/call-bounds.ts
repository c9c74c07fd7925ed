/**
 * Bounded connector calls and rate limits shared per system, inside one worker process.
 *
 * - Every connector call has a bound (`callTimeoutMs`, 60 s): a call that has not answered by then
 *   fails retryably (`call_timeout`), naming the system and the call, so a hung socket costs one
 *   attempt instead of the whole startToClose timeout. The call gets an AbortSignal (activity
 *   cancellation or the bound, whichever comes first) for connectors that can use it; one that
 *   ignores it is abandoned (its late answer or error is dropped).
 * - While a call runs or waits, the activity heartbeats every `heartbeatEveryMs` (5 s), so the
 *   workflow's heartbeatTimeout notices a dead worker and the UI shows what it is doing.
 * - A retryable ConnectorError with `retryAfterMs` (429 / Retry-After) pauses the whole system for
 *   this worker (`SystemPauses`): every call to it waits until the pause has passed, and the call
 *   that was refused is repeated in the same activity attempt, so rate limits cost no attempts.
 *   Connector methods are idempotent (types.ts), so repeating one is safe. Waiting is bounded:
 *   a call that would still be waiting `maxRateLimitWaitMs` (8 min) after it began fails retryably
 *   with `nextRetryDelay` set to the rest of the pause (below a 10-minute startToClose timeout).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ConnectorError } from './connectors/types.js';

export interface CallBounds {
  /** How long one connector call (discover, apply) may take before it fails retryably. */
  callTimeoutMs: number;
  /** How often a running or waiting call heartbeats. */
  heartbeatEveryMs: number;
  /** How long after a call began it may still be waiting for a system's rate-limit pause. */
  maxRateLimitWaitMs: number;
}

export const DEFAULT_CALL_BOUNDS: CallBounds = {
  callTimeoutMs: 60_000,
  heartbeatEveryMs: 5_000,
  maxRateLimitWaitMs: 8 * 60_000,
};

const MIN_PAUSE_MS = 200;

/** When each system may be called again, for every activity of one worker. */
export class SystemPauses {
  private readonly until = new Map<string, number>();

  /** Pauses `system` for `ms` from now (never shortening a longer pause); answers the pause's end. */
  pause(system: string, ms: number, now = Date.now()): number {
    const until = Math.max(this.until.get(system) ?? 0, now + Math.max(0, ms));
    this.until.set(system, until);
    return until;
  }

  /** How long `system` is still paused (0: it may be called). */
  remaining(system: string, now = Date.now()): number {
    const until = this.until.get(system);
    if (until === undefined) return 0;
    if (until <= now) {
      this.until.delete(system);
      return 0;
    }
    return until - now;
  }
}

/** 60000 → "60 s", 300 → "0.3 s". */
export const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

interface CallSite {
  system: string;
  /** What is called, for messages and heartbeats: `discover`, `apply disable_login`. */
  call: string;
}

function heartbeat(context: Context, site: CallSite, since: number, extra: Record<string, unknown> = {}): void {
  context.heartbeat({ call: site.call, system: site.system, since: new Date(since).toISOString(), ...extra });
}

/** Runs `work` with the call bound, heartbeating meanwhile; a late answer is dropped. */
async function runBounded<T>(
  context: Context,
  site: CallSite,
  bounds: CallBounds,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const since = Date.now();
  const bound = new AbortController();
  const signal = AbortSignal.any([context.cancellationSignal, bound.signal]);
  let timer: NodeJS.Timeout | undefined;
  // No heartbeat at the start: most calls answer well within heartbeatEveryMs, and each heartbeat
  // is a request to the server; the heartbeat timeout (30 s) counts from the start anyway.
  const beat = setInterval(() => heartbeat(context, site, since), bounds.heartbeatEveryMs);
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const message = `${site.system}: ${site.call} did not answer within ${seconds(bounds.callTimeoutMs)} (attempt ${context.info.attempt}); retrying`;
      bound.abort(new Error(message));
      reject(ApplicationFailure.retryable(message, 'call_timeout'));
    }, bounds.callTimeoutMs);
  });
  const call = Promise.resolve().then(() => work(signal));
  // The call may outlive the bound (a connector that ignores the signal): its outcome is dropped.
  call.catch(() => undefined);
  try {
    // `cancelled` rejects with a CancelledFailure when the activity is cancelled (or times out on the server).
    return await Promise.race([call, timedOut, context.cancelled]);
  } finally {
    clearTimeout(timer);
    clearInterval(beat);
  }
}

/** Waits (heartbeating) until `system` is no longer paused, within the rate-limit budget. */
async function waitOutPause(
  context: Context,
  site: CallSite,
  bounds: CallBounds,
  pauses: SystemPauses,
  began: number,
  lastError?: ConnectorError,
): Promise<void> {
  let logged = false;
  for (let left = pauses.remaining(site.system); left > 0; left = pauses.remaining(site.system)) {
    const waitedMs = Date.now() - began;
    if (waitedMs + left > bounds.maxRateLimitWaitMs) {
      context.log.warn('rate-limit pause outlasts what one attempt may wait: retrying later', {
        system: site.system,
        call: site.call,
        waitMs: left,
        waitedMs,
      });
      throw ApplicationFailure.create({
        message: `${site.system}: ${site.call} is rate-limited for another ${seconds(left)}, beyond the ${seconds(bounds.maxRateLimitWaitMs)} one attempt may wait (attempt ${context.info.attempt}); retrying after the pause`,
        type: lastError?.code ?? 'rate_limited',
        nextRetryDelay: left,
      });
    }
    if (!logged) {
      context.log.info('waiting for the system to accept calls again (rate limit)', {
        system: site.system,
        call: site.call,
        waitMs: left,
      });
      logged = true;
    }
    heartbeat(context, site, began, { rateLimitedFor: left });
    // Context.sleep rejects with a CancelledFailure if the activity is cancelled meanwhile.
    await context.sleep(Math.min(left, bounds.heartbeatEveryMs));
  }
}

/**
 * Calls a connector method for `site.system`: waits for the system's rate-limit pause, runs the
 * call within its bound, and on a rate limit pauses the system and repeats the call. Connector
 * errors become ApplicationFailures (retryable or not, as the connector classified them).
 */
export async function boundedCall<T>(
  site: CallSite,
  bounds: CallBounds,
  pauses: SystemPauses,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const context = Context.current();
  const began = Date.now();
  let lastError: ConnectorError | undefined;
  for (;;) {
    await waitOutPause(context, site, bounds, pauses, began, lastError);
    try {
      return await runBounded(context, site, bounds, work);
    } catch (err) {
      if (err instanceof ConnectorError && err.retryable && err.retryAfterMs !== undefined) {
        lastError = err;
        // A floor, so that a Retry-After of 0 cannot make a tight loop of refused calls.
        const until = pauses.pause(site.system, Math.max(err.retryAfterMs, MIN_PAUSE_MS));
        // Who paused the system and for how long; the error's own text stays out (it may name a person).
        context.log.warn('system rate-limited: pausing its calls on this worker', {
          system: site.system,
          call: site.call,
          waitMs: err.retryAfterMs,
          pausedUntil: new Date(until).toISOString(),
          code: err.code,
        });
        continue;
      }
      throw toFailure(err);
    }
  }
}

/** Turns a connector's classified error into the failure Temporal retries, or does not. */
export function toFailure(err: unknown): unknown {
  if (err instanceof ConnectorError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.code,
      nonRetryable: !err.retryable,
      nextRetryDelay: err.retryAfterMs,
    });
  }
  return err;
}
