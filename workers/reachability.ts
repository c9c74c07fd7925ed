/**
 * At start-up the worker reaches every configured system once, with its credentials, and says
 * which answered. A system that cannot be reached is reported, never fatal: the others still work,
 * and its actions retry and then become manual tasks like any other failure.
 */
import type pino from 'pino';
import type { Connector } from '../activities/connectors/types.js';

export interface Reachability {
  system: string;
  ok: boolean;
  /** Why not, in the connector's words (what to fix); absent when ok or not checkable. */
  problem?: string;
  checked: boolean;
}

export async function checkSystems(connectors: Map<string, Connector>, timeoutMs = 15_000): Promise<Reachability[]> {
  return Promise.all(
    [...connectors.values()].map(async (connector): Promise<Reachability> => {
      if (!connector.check) return { system: connector.system, ok: true, checked: false };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([connector.check(), timeout]);
        return { system: connector.system, ok: true, checked: true };
      } catch (err) {
        return { system: connector.system, ok: false, checked: true, problem: (err as Error).message };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

export function logReachability(results: Reachability[], logger: pino.Logger): void {
  for (const result of results) {
    if (!result.checked) logger.info({ system: result.system }, 'system has no reachability check');
    else if (result.ok) logger.info({ system: result.system }, 'system reachable');
    else
      logger.error(
        { system: result.system, problem: result.problem },
        'system UNREACHABLE at start-up: its actions will retry and then wait for an operator',
      );
  }
}
