import { z } from 'zod';
import { offboardingRequestSchema } from './request.js';

/**
 * Operator commands, sent as signals (Temporal UI, `temporal workflow signal`) or as Updates
 * (CLI, API) so the caller learns at once when one is refused. `by` names who decided it.
 */
const by = z.string().min(1).max(200);
const reason = z.string().min(1).max(2000);

export const holdCommandSchema = z.object({ by, reason, until: z.iso.datetime({ offset: true }).optional() });
export const releaseCommandSchema = z.object({ by, reason: reason.optional() });
export const expediteCommandSchema = z.object({ by, reason });
export const cancelCommandSchema = z.object({ by, reason });
export const retryCommandSchema = z.object({ by, actionId: z.string().min(1) });
export const skipCommandSchema = z.object({ by, actionId: z.string().min(1), reason });
/** A later HR event for a person whose offboarding is running (sent by the client that joined it). */
export const supersedeCommandSchema = z.object({ by, request: offboardingRequestSchema });

export type HoldCommand = z.infer<typeof holdCommandSchema>;
export type ReleaseCommand = z.infer<typeof releaseCommandSchema>;
export type ExpediteCommand = z.infer<typeof expediteCommandSchema>;
export type CancelCommand = z.infer<typeof cancelCommandSchema>;
export type RetryCommand = z.infer<typeof retryCommandSchema>;
export type SkipCommand = z.infer<typeof skipCommandSchema>;
export type SupersedeCommand = z.infer<typeof supersedeCommandSchema>;
