/**
 * What a manual task is about, as a typed value. Operators name a task by its id (`offboard skip
 * verify/revoke/github/1`), so the id stays a string on the wire; what it refers to travels beside
 * it in the status and in the `manual_task_opened` row, and readers ask the value, not the prefix.
 */
import { z } from 'zod';
import { leftoverFromSentence, leftoverSchema } from './leftovers.js';

export const taskRefSchema = z.discriminatedUnion('kind', [
  /** The worker could not plan the offboarding (its policy refused the request); `retry` plans again. */
  z.object({ kind: z.literal('plan'), system: z.null() }),
  /** Mapping a system's access failed for good; skipping takes the system out of the offboarding. */
  z.object({ kind: z.literal('discover'), system: z.string() }),
  /** One action of the plan (stage `cancel`: re-enabling a login after a cancel). */
  z.object({ kind: z.literal('action'), actionId: z.string(), stage: z.string(), system: z.string() }),
  /** Verification read back something the stage should have removed (the n-th leftover). */
  z.object({
    kind: z.literal('verify'),
    stage: z.string(),
    system: z.string(),
    n: z.number().int().positive(),
    leftover: leftoverSchema,
  }),
]);
export type TaskRef = z.infer<typeof taskRefSchema>;

/** The one task a run without a plan can have. */
export const PLAN_TASK_ID = 'plan';

/** Stage names that would make a task id ambiguous (the policy refuses them). */
export const RESERVED_STAGE_NAMES: ReadonlySet<string> = new Set(['discover', 'verify', 'cancel']);

export function taskIdOf(ref: TaskRef): string {
  switch (ref.kind) {
    case 'plan':
      return PLAN_TASK_ID;
    case 'discover':
      return `discover/${ref.system}`;
    case 'action':
      return ref.actionId;
    case 'verify':
      return `verify/${ref.stage}/${ref.system}/${ref.n}`;
  }
}

/** Re-enabling logins after a cancel is part of undoing the offboarding, not of the offboarding. */
export const undoesCancel = (ref: TaskRef) => ref.kind === 'action' && ref.stage === 'cancel';

const VERIFY_ERROR = 'still present: ';

/** The error a verification task opens with: what is still there, for a person. */
export const verifyTaskError = (sentence: string) => `${VERIFY_ERROR}${sentence}`;

/**
 * For rows written before tasks carried their reference: read it from the id (and, for a
 * verification task, the leftover from its error). Action ids are `<stage>/<system>/<action>…`.
 */
export function taskRefFromId(id: string, error = ''): TaskRef {
  if (id === PLAN_TASK_ID) return { kind: 'plan', system: null };
  const parts = id.split('/');
  if (parts[0] === 'discover') return { kind: 'discover', system: parts.slice(1).join('/') };
  if (parts[0] === 'verify' && parts.length === 4) {
    const sentence = error.startsWith(VERIFY_ERROR) ? error.slice(VERIFY_ERROR.length) : error;
    return {
      kind: 'verify',
      stage: parts[1]!,
      system: parts[2]!,
      n: Number(parts[3]) || 1,
      leftover: leftoverFromSentence(sentence),
    };
  }
  return { kind: 'action', actionId: id, stage: parts[0] ?? '', system: parts[1] ?? '' };
}
