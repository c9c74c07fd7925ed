import { z } from 'zod';
import { durationSchema } from './duration.js';
import { RESERVED_STAGE_NAMES } from './manual-tasks.js';

export const actionKindSchema = z.enum([
  'disable_login',
  'revoke_sessions',
  'revoke_tokens',
  'remove_entitlement',
  'transfer_ownership',
  'delete_account',
  'enable_login',
]);
export type ActionKind = z.infer<typeof actionKindSchema>;

/**
 * Which entitlements a remove_entitlement step takes away: all of them, only those the config
 * names as privileged, or those the person's new role does not grant (role change).
 */
export const entitlementScopeSchema = z.enum(['all', 'privileged', 'not_granted_by_new_role']);
export type EntitlementScope = z.infer<typeof entitlementScopeSchema>;

export const stepSchema = z.union([
  z.object({ action: z.literal('remove_entitlement'), scope: entitlementScopeSchema.default('all') }),
  z.object({ action: actionKindSchema.exclude(['remove_entitlement', 'enable_login']) }),
]);
export type Step = z.infer<typeof stepSchema>;

export const stageTemplateSchema = z.object({
  name: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'lower-case letters, digits and "-"')
    .refine((name) => !RESERVED_STAGE_NAMES.has(name), {
      message: `"discover", "verify" and "cancel" name kinds of manual task; choose another stage name`,
    }),
  /** Offset from the effective time; negative runs before it (e.g. contractors' privileged access). */
  after: durationSchema,
  steps: z.array(stepSchema).min(1),
});
export type StageTemplate = z.infer<typeof stageTemplateSchema>;

export const playbookNameSchema = z.enum(['involuntary', 'security', 'voluntary', 'contractor', 'role_change']);
export type PlaybookName = z.infer<typeof playbookNameSchema>;

const playbookSchema = z.object({
  mode: z.enum(['immediate', 'staged']),
  /** Time from the effective time to the end of the first stage that disables login (or the last stage). */
  sla: durationSchema,
  stages: z.array(stageTemplateSchema).min(1),
});

type PlaybookInput = z.input<typeof playbookSchema>;

const retrySchema = z.object({
  initialInterval: durationSchema.prefault('5s'),
  maximumInterval: durationSchema.prefault('10m'),
  backoffCoefficient: z.number().min(1).max(10).default(2),
  /** After this many attempts an action becomes a manual task for an operator. */
  maximumAttempts: z.number().int().min(1).max(100).default(8),
});

/** Entitlement ids per system (group DNs for LDAP), compared case-insensitively. */
const entitlementListsSchema = z.record(z.string(), z.array(z.string().min(1)));

const revokeAll: z.input<typeof stepSchema>[] = [
  { action: 'disable_login' },
  { action: 'revoke_sessions' },
  { action: 'revoke_tokens' },
  { action: 'remove_entitlement', scope: 'all' },
];

/** The defaults from docs/policy.md; every field can be overridden in the config file. */
export const DEFAULT_PLAYBOOKS: Record<PlaybookName, PlaybookInput> = {
  involuntary: {
    mode: 'immediate',
    sla: '1h',
    stages: [
      { name: 'revoke', after: '0s', steps: revokeAll },
      { name: 'delete', after: '30d', steps: [{ action: 'delete_account' }] },
    ],
  },
  security: {
    mode: 'immediate',
    sla: '1h',
    stages: [
      { name: 'revoke', after: '0s', steps: revokeAll },
      { name: 'delete', after: '30d', steps: [{ action: 'delete_account' }] },
    ],
  },
  voluntary: {
    mode: 'staged',
    sla: '24h',
    stages: [
      {
        name: 'disable',
        after: '0s',
        steps: [{ action: 'disable_login' }, { action: 'revoke_sessions' }, { action: 'revoke_tokens' }],
      },
      { name: 'remove-entitlements', after: '1d', steps: [{ action: 'remove_entitlement', scope: 'all' }] },
      { name: 'delete', after: '30d', steps: [{ action: 'delete_account' }] },
    ],
  },
  contractor: {
    mode: 'staged',
    sla: '24h',
    stages: [
      { name: 'drop-privileged', after: '-2d', steps: [{ action: 'remove_entitlement', scope: 'privileged' }] },
      { name: 'disable', after: '0s', steps: revokeAll },
      { name: 'delete', after: '30d', steps: [{ action: 'delete_account' }] },
    ],
  },
  role_change: {
    mode: 'staged',
    sla: '14d',
    stages: [
      { name: 'transition', after: '14d', steps: [{ action: 'remove_entitlement', scope: 'not_granted_by_new_role' }] },
    ],
  },
};

export const policySchema = z.object({
  playbooks: z
    .object({
      involuntary: playbookSchema.prefault(DEFAULT_PLAYBOOKS.involuntary),
      security: playbookSchema.prefault(DEFAULT_PLAYBOOKS.security),
      voluntary: playbookSchema.prefault(DEFAULT_PLAYBOOKS.voluntary),
      contractor: playbookSchema.prefault(DEFAULT_PLAYBOOKS.contractor),
      role_change: playbookSchema.prefault(DEFAULT_PLAYBOOKS.role_change),
    })
    .prefault({}),
  retry: retrySchema.prefault({}),
  /** Manual tasks (failures, apps with no API): how often to remind, and when one is overdue. */
  manualTasks: z
    .object({ remindEvery: durationSchema.prefault('1d'), dueWithin: durationSchema.prefault('3d') })
    .prefault({}),
  /** Per system, the entitlements that count as privileged (admin groups, superuser roles). */
  privileged: entitlementListsSchema.default({}),
  /** Per role, per system, the entitlements that role grants (kept on a role change). */
  roles: z.record(z.string(), entitlementListsSchema).default({}),
});
export type Policy = z.infer<typeof policySchema>;
/** The policy as written in a config file, before defaults and durations are applied. */
export type PolicyInput = z.input<typeof policySchema>;
export type RetrySettings = Policy['retry'];

export const defaultPolicy = (): Policy => policySchema.parse({});
