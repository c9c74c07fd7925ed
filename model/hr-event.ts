import { z } from 'zod';
import { employeeIdSchema, employmentTypeSchema, terminationReasonSchema, type OffboardingRequest } from './request.js';

/**
 * The generic HR event: what an HR system (or a relay in front of one) sends when a person
 * leaves, ends a contract or changes role. Adapters for specific HR systems map onto this.
 */
export const hrEventSchema = z.object({
  eventId: z.string().min(1).max(200),
  type: z.enum(['termination', 'contract_end', 'role_change', 'termination_rescinded']),
  employeeId: employeeIdSchema,
  email: z.email().optional(),
  reason: terminationReasonSchema.optional(),
  employmentType: employmentTypeSchema.default('employee'),
  effectiveAt: z.iso.datetime({ offset: true }),
  newRole: z.string().min(1).optional(),
  /** The person's manager, told of the offboarding; either is enough (the directory can fill in the email). */
  managerEmployeeId: employeeIdSchema.optional(),
  managerEmail: z.email().optional(),
});
export type HrEvent = z.infer<typeof hrEventSchema>;

/** The request an HR event starts; a rescinded termination starts nothing (it cancels). */
export function requestFromHrEvent(event: HrEvent, requestedBy: string): OffboardingRequest | undefined {
  if (event.type === 'termination_rescinded') return undefined;
  return {
    requestId: event.eventId,
    subject: { employeeId: event.employeeId, ...(event.email ? { email: event.email } : {}) },
    trigger: event.type,
    reason: event.reason,
    employmentType: event.employmentType,
    effectiveAt: event.effectiveAt,
    requestedBy,
    newRole: event.newRole,
    ...(event.managerEmployeeId || event.managerEmail
      ? {
          manager: {
            ...(event.managerEmployeeId ? { employeeId: event.managerEmployeeId } : {}),
            ...(event.managerEmail ? { email: event.managerEmail } : {}),
          },
        }
      : {}),
  };
}
