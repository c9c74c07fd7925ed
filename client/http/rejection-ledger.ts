/**
 * The audit record of refused HR deliveries, bounded per sender. The webhook is reachable before
 * any signature is checked, and the audit table is append-only: one row per refused request would
 * let anyone who can reach the endpoint grow the evidence store without limit. So each remote
 * address gets `limit` rows of its own per window; what it sends beyond that is counted, and one
 * summary row per window records how many, with which statuses. Nothing goes unrecorded, and the
 * answers to the sender do not change. Pending summaries are written when the window ends and when
 * the server closes.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { AuditStore } from '../../activities/audit.js';
import type { AuditEvent } from '../../model/audit.js';

export interface RejectionLedgerOptions {
  audit: AuditStore;
  log: FastifyBaseLogger;
  now: () => number;
  /** Rows of their own per remote address and window (default 60). */
  limit?: number;
  /** The window, in milliseconds (default one minute). */
  windowMs?: number;
  /** The offboarding id rejected deliveries are filed under. */
  offboardingId: string;
}

interface Window {
  startMs: number;
  recorded: number;
  suppressed: number;
  statuses: Record<string, number>;
  source: string;
  timer?: NodeJS.Timeout;
}

/** Beyond this many senders in one window, the rest share one window (a flood from many addresses). */
const MAX_TRACKED_SENDERS = 10_000;

export type RejectionRow = Pick<AuditEvent, 'employeeId' | 'actor' | 'details'> & { status: number; source: string };

export function createRejectionLedger(options: RejectionLedgerOptions) {
  const { audit, log, now, offboardingId } = options;
  const limit = options.limit ?? 60;
  const windowMs = options.windowMs ?? 60_000;
  const windows = new Map<string, Window>();

  async function append(
    event: Omit<AuditEvent, 'id' | 'occurredAt' | 'offboardingId' | 'system' | 'action' | 'outcome'>,
  ) {
    try {
      await audit.append({
        id: `${offboardingId}/${randomUUID()}`,
        occurredAt: new Date(now()).toISOString(),
        offboardingId,
        system: null,
        action: 'hr_event_rejected',
        outcome: 'rejected',
        ...event,
      });
    } catch (err) {
      log.error({ reason: (err as Error).message }, 'could not record a rejected hr event in the audit');
    }
  }

  async function summarise(sender: string, window: Window) {
    clearTimeout(window.timer);
    if (windows.get(sender) === window) windows.delete(sender);
    if (window.suppressed === 0) return;
    log.warn(
      { sender, suppressed: window.suppressed, statuses: window.statuses },
      'hr events rejected beyond the per-sender audit limit',
    );
    await append({
      employeeId: 'unknown',
      actor: window.source === 'bamboohr' ? 'bamboohr' : 'hr-webhook',
      details: {
        reason: `${window.suppressed} more deliveries from ${sender} were refused within ${windowMs / 1000} s; counted here instead of one row each`,
        suppressed: window.suppressed,
        statuses: window.statuses,
        remoteAddress: sender,
        windowStart: new Date(window.startMs).toISOString(),
        windowEnd: new Date(window.startMs + windowMs).toISOString(),
        source: window.source,
      },
    });
  }

  function windowFor(sender: string, source: string): { key: string; window: Window } {
    const nowMs = now();
    if (!windows.has(sender) && windows.size >= MAX_TRACKED_SENDERS) {
      for (const [key, window] of windows)
        if (window.suppressed === 0 && nowMs - window.startMs >= windowMs) windows.delete(key);
      if (windows.size >= MAX_TRACKED_SENDERS) sender = 'many senders';
    }
    let window = windows.get(sender);
    if (window && nowMs - window.startMs >= windowMs) {
      void summarise(sender, window);
      window = undefined;
    }
    if (!window) {
      window = { startMs: nowMs, recorded: 0, suppressed: 0, statuses: {}, source };
      windows.set(sender, window);
    }
    return { key: sender, window };
  }

  return {
    /** Records one refused delivery from `sender` (its remote address). */
    async record(sender: string, row: RejectionRow): Promise<void> {
      const { key, window } = windowFor(sender, row.source);
      if (window.recorded < limit) {
        window.recorded += 1;
        await append({ employeeId: row.employeeId, actor: row.actor, details: row.details });
        return;
      }
      window.suppressed += 1;
      if (window.suppressed === 1)
        log.warn(
          { sender, limit, windowMs },
          'hr events refused beyond the per-sender audit limit: counting them until the window ends',
        );
      window.statuses[String(row.status)] = (window.statuses[String(row.status)] ?? 0) + 1;
      if (!window.timer) {
        window.timer = setTimeout(() => void summarise(key, window), Math.max(window.startMs + windowMs - now(), 0));
        window.timer.unref();
      }
    },
    /** Writes every pending summary (the server is closing). */
    async close(): Promise<void> {
      await Promise.all([...windows.entries()].map(([sender, window]) => summarise(sender, window)));
    },
  };
}
export type RejectionLedger = ReturnType<typeof createRejectionLedger>;
