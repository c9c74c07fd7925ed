/**
 * The LDAP connector's settings, shared by its two modes: ldap.ts (OpenLDAP, and the `type: ldap`
 * registry entry, which dispatches `mode: ad`) and active-directory.ts. Kept apart from both so
 * that neither imports the other's module for its config type (ldap.ts imports the AD factory).
 */
import { z } from 'zod';

export const ldapSystemSchema = z.object({
  type: z.literal('ldap'),
  url: z.string().regex(/^ldaps?:\/\/.+/, 'an ldap:// or ldaps:// URL'),
  bindDn: z.string().min(1),
  /** Resolved from the environment variable the config names; never written in the file. */
  bindPassword: z.string().min(1),
  peopleBase: z.string().min(1),
  groupsBase: z.string().min(1),
  /** `openldap` (ppolicy lock, entryUUID) or `ad` (userAccountControl, objectGUID; see active-directory.ts). */
  mode: z.enum(['openldap', 'ad']).default('openldap'),
  /** Where the HR id lives; employeeNumber for OpenLDAP and employeeID for AD when not set. */
  employeeIdAttribute: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]*$/)
    .optional(),
  timeoutMs: z.number().int().positive().default(10_000),
  /** Verify the server's certificate. Turn off only for a test DC with a self-signed certificate. */
  tlsRejectUnauthorized: z.boolean().default(true),
  /** AD: an OU that disabled accounts are moved to (and moved back from by enable_login). */
  disabledOu: z.string().min(1).optional(),
  /** AD: where the OU a disabled account came from is kept while it sits in disabledOu. */
  originalOuAttribute: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]*$/)
    .default('adminDescription'),
});
export type LdapSystemConfig = z.infer<typeof ldapSystemSchema>;
