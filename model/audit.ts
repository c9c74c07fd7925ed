import { z } from 'zod';

export const auditEventSchema = z.object({
  /** Deterministic (workflow id, run id, step number): a retried activity inserts once. */
  id: z.string().min(1),
  occurredAt: z.iso.datetime(),
  offboardingId: z.string(),
  employeeId: z.string(),
  system: z.string().nullable(),
  /** What happened: offboarding_started, action, hold_placed, manual_task_opened, ... */
  action: z.string(),
  outcome: z.string().nullable(),
  /** Who decided it: the HR system, an operator, or "workflow" for scheduled steps. */
  actor: z.string(),
  details: z.record(z.string(), z.unknown()),
});
export type AuditEvent = z.infer<typeof auditEventSchema>;

export interface ChainedAuditEvent extends AuditEvent {
  seq: number;
  prevHash: string;
  hash: string;
}

/** The hash of the first row's predecessor. */
export const GENESIS_HASH = '0'.repeat(64);
