/**
 * One person, one id. HR ids reach offboard by several doors (the signed webhook, BambooHR, the
 * CLI, the API's paths and filters, a manager's `reports` in the config), and each door used to
 * keep whatever case it was given: `e1021` was a second, valid person beside `E1021`, with a
 * workflow of its own that dedupe and rescind never reached.
 *
 * The rule: an id is case-folded to upper case (the sample org's and most HR systems' form,
 * `E1021`) wherever it is parsed, so every workflow id, search attribute, dedupe record and audit
 * row carries the canonical form. An HR system whose ids differ only by case (rare, but some
 * use opaque mixed-case keys) sets `employeeIds.case: preserve` in the config; the API, the CLI
 * and the worker read the same file, so every door applies the same rule.
 *
 * The rule is process-wide (set once at start-up from the config, `useEmployeeIdCase`), because
 * the id is parsed by schemas that many modules share; it is never set inside workflow code.
 */
import { z } from 'zod';

export const employeeIdCaseSchema = z.enum(['upper', 'preserve']);
export type EmployeeIdCase = z.infer<typeof employeeIdCaseSchema>;

/** The config's `employeeIds` section. */
export const employeeIdsConfigSchema = z
  .object({
    /** `upper` (default): `e1021` and `E1021` are one person. `preserve`: ids are case-sensitive. */
    case: employeeIdCaseSchema.default('upper'),
  })
  .strict();

let currentCase: EmployeeIdCase = 'upper';

/** Sets the rule for this process (from the config's `employeeIds.case`). */
export function useEmployeeIdCase(rule: EmployeeIdCase): void {
  currentCase = rule;
}

export const employeeIdCase = (): EmployeeIdCase => currentCase;

/** The canonical form of an id that already matched the id alphabet (ASCII, so upper-casing is exact). */
export function canonicalEmployeeId(id: string): string {
  return currentCase === 'upper' ? id.toUpperCase() : id;
}
