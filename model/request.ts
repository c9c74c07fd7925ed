import { z } from 'zod';
import { canonicalEmployeeId } from './employee-id.js';

/**
 * Employee ids appear in workflow ids, search attributes and LDAP filters, so they are restricted
 * to a conservative alphabet: an HR system's opaque id, never a name or an email. Parsing gives
 * the canonical form (`model/employee-id.ts`: upper case unless the config says `preserve`), so
 * `e1021` and `E1021` are one person at every door.
 */
export const employeeIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'must be 1-64 letters, digits, ".", "_" or "-" (an HR id, not a name or email)',
  )
  .transform(canonicalEmployeeId);

export const triggerSchema = z.enum(['termination', 'contract_end', 'role_change']);
export const terminationReasonSchema = z.enum(['voluntary', 'involuntary', 'security']);
export const employmentTypeSchema = z.enum(['employee', 'contractor', 'vendor']);

export const subjectSchema = z.object({
  employeeId: employeeIdSchema,
  /** Used to correlate accounts in systems keyed by email. Travels in payloads only, never in ids. */
  email: z.email().optional(),
});

/**
 * The person's manager, who hears of the offboarding (start, hold, escalation, end). HR sends
 * whichever it has; without an email the directory's `manager` entry supplies one.
 */
export const managerSchema = z
  .object({
    employeeId: employeeIdSchema.optional(),
    email: z.email().optional(),
  })
  .refine(
    (manager) => manager.employeeId !== undefined || manager.email !== undefined,
    "give the manager's employeeId or email (or leave manager out)",
  );

export const offboardingRequestSchema = z
  .object({
    /** The HR event id (or an operator-chosen id): one offboarding per request id. */
    requestId: z.string().min(1).max(200),
    subject: subjectSchema,
    trigger: triggerSchema,
    reason: terminationReasonSchema.optional(),
    employmentType: employmentTypeSchema,
    effectiveAt: z.iso.datetime({ offset: true }),
    requestedBy: z.string().min(1).max(200),
    /** For a role change: the role the person moves into (keys of policy.roles). */
    newRole: z.string().min(1).optional(),
    manager: managerSchema.optional(),
  })
  .superRefine((request, ctx) => {
    if (request.trigger === 'termination' && !request.reason) {
      ctx.addIssue({
        code: 'custom',
        path: ['reason'],
        message: 'required for a termination: voluntary, involuntary or security',
      });
    }
    if (request.trigger === 'role_change' && !request.newRole) {
      ctx.addIssue({
        code: 'custom',
        path: ['newRole'],
        message: 'required for a role change: the role the person moves into',
      });
    }
  });

export type Subject = z.infer<typeof subjectSchema>;
export type Manager = z.infer<typeof managerSchema>;
export type Trigger = z.infer<typeof triggerSchema>;
export type TerminationReason = z.infer<typeof terminationReasonSchema>;
export type EmploymentType = z.infer<typeof employmentTypeSchema>;
export type OffboardingRequest = z.infer<typeof offboardingRequestSchema>;

/**
 * The workflow id: the canonical HR id only, an opaque identifier (never a name or an email), so
 * no personal data is in the plain-text id.
 */
export function workflowIdFor(employeeId: string): string {
  return `offboarding-${employeeIdSchema.parse(employeeId)}`;
}

/** Formats zod issues as "path: message" lines, the form every user-facing error uses. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('\n');
}
