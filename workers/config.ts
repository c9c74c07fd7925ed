/**
 * The worker's configuration: one file (YAML or JSON) listing the target systems and the policy,
 * validated by zod at start-up. Secrets are references to environment variables
 * (`bindPassword: { env: OFFBOARD_LDAP_PASSWORD }`), never literals in the file.
 */
import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { systemConfigSchemaWith } from '../activities/connectors/registry.js';
import { notificationsSchema } from '../activities/notify.js';
import { apiConfigSchemaWith } from '../model/api-config.js';
import { employeeIdsConfigSchema, useEmployeeIdCase } from '../model/employee-id.js';
import { policySchema, type Policy } from '../model/policy.js';
import { sharedSignalsSchemaWith } from '../model/shared-signals.js';
import { describeIssues } from '../model/request.js';

const secretRef = z.object({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name') }).strict();

/** Resolves `{ env: NAME }` from the environment; a literal secret in the file is refused. */
function secret(env: NodeJS.ProcessEnv) {
  return z.union([secretRef, z.string()]).transform((value, ctx) => {
    if (typeof value === 'string') {
      ctx.addIssue({
        code: 'custom',
        message: 'write secrets as { env: VARIABLE_NAME }, not as literals in the config file',
      });
      return z.NEVER;
    }
    const resolved = env[value.env];
    if (!resolved) {
      ctx.addIssue({ code: 'custom', message: `environment variable ${value.env} is not set` });
      return z.NEVER;
    }
    return resolved;
  });
}

export function configSchema(env: NodeJS.ProcessEnv) {
  // One schema per registered connector type (activities/connectors/registry.ts), each secret
  // field of its descriptor resolved from `{ env: NAME }` and then checked as the connector expects.
  const system = systemConfigSchemaWith((plain) => secret(env).pipe(plain));
  return z
    .object({
      systems: z
        .record(z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'system names: lower-case letters, digits and "-"'), system)
        .default({}),
      policy: policySchema.prefault({}),
      /** How HR ids are normalised (model/employee-id.ts): upper-cased unless `case: preserve`. */
      employeeIds: employeeIdsConfigSchema.prefault({}),
      /** The HTTP API (client/http): tokens with roles, HR webhook secrets. */
      api: apiConfigSchemaWith((plain) => secret(env).pipe(plain)).optional(),
      /** The Shared Signals transmitter (issuer, signing key) for `ssf` receivers and the API's metadata. */
      sharedSignals: sharedSignalsSchemaWith((plain) => secret(env).pipe(plain)).optional(),
      /** The worker process itself (workers/create-worker.ts). */
      worker: z
        .object({
          /**
           * How many runs' histories the worker keeps in memory (Temporal's sticky cache). A
           * waiting run needs none: evicted, it is replayed from its history when its timer fires.
           * Default: sized from the heap (workers/create-worker.ts defaultMaxCachedWorkflows).
           */
          maxCachedWorkflows: z
            .number()
            .int()
            .min(2, 'at least 2 (Temporal needs room for a task in flight)')
            .optional(),
        })
        .strict()
        .prefault({}),
      notifications: notificationsSchema
        .extend({
          slack: notificationsSchema.shape.slack
            .unwrap()
            .extend({ token: secret(env) })
            .optional(),
        })
        .prefault({}),
    })
    .strict();
}
export type OffboardConfig = z.infer<ReturnType<typeof configSchema>>;
export type ConfigInput = z.input<ReturnType<typeof configSchema>>;

export class ConfigError extends Error {}

/**
 * Sets this process's employee-id rule from the raw config, before anything else in it (a
 * manager's `reports`) is parsed as an employee id.
 */
function applyEmployeeIdRule(raw: unknown, source: string): void {
  const section = (raw as { employeeIds?: unknown } | null)?.employeeIds;
  const rule = employeeIdsConfigSchema.safeParse(section ?? {});
  if (!rule.success) throw new ConfigError(`invalid config in ${source}:\nemployeeIds.${describeIssues(rule.error)}`);
  useEmployeeIdCase(rule.data.case);
}

export function parseConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = process.env): OffboardConfig {
  applyEmployeeIdRule(raw, source);
  const result = configSchema(env).safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(`invalid config in ${source}:\n${describeIssues(result.error)}`);
  return result.data;
}

const configPath = (env: NodeJS.ProcessEnv) =>
  env.OFFBOARD_CONFIG ?? (existsSync('offboard.config.yaml') ? 'offboard.config.yaml' : undefined);

/** Reads OFFBOARD_CONFIG (a path), or ./offboard.config.yaml when present, or the defaults. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): OffboardConfig {
  const path = configPath(env);
  if (!path) return parseConfig({}, 'the built-in defaults', env);
  return parseConfig(readConfigFile(path), path, env);
}

/** What a client (the CLI) needs to accept a request as the worker will plan it. */
export interface IntakeConfig {
  policy: Policy;
  /** Where it came from, for messages. */
  source: string;
}

/**
 * The parts of the worker's config file that decide whether a request can be planned (the
 * policy) and how ids are written (`employeeIds`), read without the rest: the CLI runs where the
 * connectors' secrets are not set, and it needs none of them. Same file, same schemas, same
 * defaults as the worker's `loadConfig`.
 */
export function loadIntakeConfig(env: NodeJS.ProcessEnv = process.env): IntakeConfig {
  const path = configPath(env);
  const raw = (path ? readConfigFile(path) : {}) as { policy?: unknown; employeeIds?: unknown } | null;
  const source = path ?? 'the built-in defaults';
  applyEmployeeIdRule(raw, source);
  const policy = policySchema.safeParse(raw?.policy ?? {});
  if (!policy.success) throw new ConfigError(`invalid config in ${source}:\npolicy.${describeIssues(policy.error)}`);
  return { policy: policy.data, source };
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML/JSON: ${(err as Error).message}`);
  }
  return raw;
}
