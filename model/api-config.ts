/**
 * The `api` section of the config (HTTP API tokens and roles, HR webhook secrets). It lives in
 * model/ so that the worker's config loader can validate it without importing the API.
 */
import { z } from 'zod';
import { durationSchema } from './duration.js';
import { employeeIdSchema, employmentTypeSchema, terminationReasonSchema } from './request.js';

export const ROLES = ['hr-system', 'manager', 'security', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Wraps a secret's plain-string schema: the config loader passes one that resolves
 * `{ env: NAME }` first (`(plain) => secret(env).pipe(plain)`); tests pass the identity.
 */
export type SecretWrap = (plain: z.ZodType<string, string>) => z.ZodType<string, unknown>;

/** A Standard Webhooks symmetric secret: base64, with or without the `whsec_` prefix (the reference libraries accept both). */
const WHSEC = /^(whsec_)?[A-Za-z0-9+/]+={0,2}$/;
/** A Standard Webhooks ed25519 public key (`v1a`): the raw 32-byte key in base64, with or without the `whpk_` prefix. */
const WHPK = /^(whpk_)?[A-Za-z0-9+/]{43}=$/;

/** The base64 part of a secret or key, without its `whsec_`/`whpk_` prefix. */
export const withoutKeyPrefix = (value: string): string => value.replace(/^(whsec_|whpk_)/, '');

/**
 * The `api` section of the config. Secrets (plain strings here; wrap them with `wrap`):
 * `tokens[].token`, `webhookSecrets[]`, `bamboohrSecret` (`webhookPublicKeys[]` are public keys, not secrets).
 */
export function apiConfigSchemaWith(wrap: SecretWrap) {
  const token = wrap(z.string().min(32, 'at least 32 characters (e.g. `openssl rand -base64 32`)'));
  const webhookSecret = wrap(
    z
      .string()
      .regex(WHSEC, 'a Standard Webhooks secret: base64, optionally prefixed whsec_')
      .refine(
        (s) => Buffer.from(withoutKeyPrefix(s), 'base64').length >= 16,
        'the key must be at least 16 bytes (24-64 recommended)',
      ),
  );
  const webhookPublicKey = z
    .string()
    .regex(WHPK, 'a Standard Webhooks ed25519 public key: whpk_ followed by the 32-byte key in base64');
  return z
    .object({
      tokens: z
        .array(
          z
            .object({
              /** Who acts: recorded as `by` on every command. An operator id, not an email. */
              subject: z
                .string()
                .regex(
                  /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/,
                  'letters, digits, ".", "_", ":" or "-" (an operator id, not an email)',
                ),
              role: z.enum(ROLES),
              token,
              /** For a manager: the employee ids of their reports, the only ones they may read, hold and release. */
              reports: z.array(employeeIdSchema).optional(),
            })
            .strict()
            .superRefine((entry, ctx) => {
              if (entry.reports && entry.role !== 'manager')
                ctx.addIssue({ code: 'custom', path: ['reports'], message: 'only a manager has reports' });
            }),
        )
        .default([])
        .superRefine((tokens, ctx) => {
          const seen = new Set<string>();
          tokens.forEach((entry, i) => {
            if (seen.has(entry.token))
              ctx.addIssue({ code: 'custom', path: [i, 'token'], message: 'two entries share this token' });
            seen.add(entry.token);
          });
        }),
      /** Standard Webhooks secrets (`whsec_…`, `v1` HMAC); a delivery signed with any one of them passes (rotation). */
      webhookSecrets: z.array(webhookSecret).default([]),
      /**
       * Standard Webhooks ed25519 public keys (`whpk_…`, `v1a` signatures), beside or instead of
       * the secrets. Public keys are not secrets: written as literals. Any one valid `v1` or `v1a`
       * signature under any configured secret or key passes.
       */
      webhookPublicKeys: z.array(webhookPublicKey).default([]),
      /** The BambooHR webhook's private key; without it `POST /v1/hr/bamboohr` refuses every delivery. */
      bamboohrSecret: wrap(z.string().min(1)).optional(),
      /**
       * How long a delivery's dedupe record (identifiers only) is kept. Senders retry for days at
       * most (Standard Webhooks: about three), so a year is ample; older records are deleted daily.
       */
      hrEventsRetention: durationSchema
        .refine(
          (ms) => ms >= 7 * 86_400_000,
          'at least 7d: senders retry for days, and a redelivery must still be recognised',
        )
        .default(400 * 86_400_000),
      /** What a BambooHR delivery cannot say (see client/http/hr-webhook.ts). */
      bamboohrMapping: z
        .object({
          reason: terminationReasonSchema.default('voluntary'),
          employmentType: employmentTypeSchema.default('employee'),
          /** changedFields aliases that mean "this person left". */
          terminationFields: z.array(z.string().min(1)).min(1).default(['status', 'terminationDate']),
        })
        .strict()
        .prefault({}),
    })
    .strict();
}

/** The section with secrets as plain strings. */
export const apiConfigSchema = apiConfigSchemaWith((plain) => plain);
export type ApiConfig = z.output<typeof apiConfigSchema>;
export type ApiConfigInput = z.input<typeof apiConfigSchema>;
