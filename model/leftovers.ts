/**
 * What a stage should have removed and a system, read back, still has. A typed value, so that the
 * evidence report and the SLA ask "is this a login?" of a field instead of a sentence; the prose
 * is made from it in one place, for people (tasks, notifications, reports).
 */
import { z } from 'zod';

const system = z.string();
export const leftoverSchema = z.discriminatedUnion('what', [
  z.object({ what: z.literal('account'), system }),
  z.object({ what: z.literal('login'), system }),
  z.object({ what: z.literal('sessions'), system }),
  z.object({ what: z.literal('tokens'), system }),
  z.object({ what: z.literal('entitlement'), system, entitlement: z.object({ kind: z.string(), id: z.string() }) }),
  /** A row from before leftovers were typed whose sentence is not one this version wrote. */
  z.object({ what: z.literal('unrecognised'), system: system.nullable(), text: z.string() }),
]);
export type Leftover = z.infer<typeof leftoverSchema>;

export function describeLeftover(leftover: Leftover): string {
  switch (leftover.what) {
    case 'account':
      return `${leftover.system}: account still exists`;
    case 'login':
      return `${leftover.system}: login still enabled`;
    case 'sessions':
      return `${leftover.system}: sessions still active`;
    case 'tokens':
      return `${leftover.system}: tokens or keys still valid`;
    case 'entitlement':
      return `${leftover.system}: still in ${leftover.entitlement.kind} ${leftover.entitlement.id}`;
    case 'unrecognised':
      return leftover.text;
  }
}

export const sameLeftover = (a: Leftover, b: Leftover) => describeLeftover(a) === describeLeftover(b);

const SENTENCES: Record<string, 'account' | 'login' | 'sessions' | 'tokens'> = {
  'account still exists': 'account',
  'login still enabled': 'login',
  'sessions still active': 'sessions',
  'tokens or keys still valid': 'tokens',
};

/**
 * Rows and tasks written before leftovers were typed carry the sentence `describeLeftover` makes;
 * this reads it back. The only place that parses one: a new writer stores the object.
 */
export function leftoverFromSentence(text: string): Leftover {
  const colon = text.indexOf(': ');
  if (colon < 0) return { what: 'unrecognised', system: null, text };
  const system = text.slice(0, colon);
  const rest = text.slice(colon + 2);
  const what = SENTENCES[rest];
  if (what) return { what, system };
  const entitlement = /^still in (\S+) (.+)$/.exec(rest);
  if (entitlement) return { what: 'entitlement', system, entitlement: { kind: entitlement[1]!, id: entitlement[2]! } };
  return { what: 'unrecognised', system, text };
}

/** A stored leftover: the typed value, or the sentence older versions wrote. */
export const storedLeftoverSchema = z.union([leftoverSchema, z.string().transform(leftoverFromSentence)]);
