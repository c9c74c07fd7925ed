/**
 * Every type of system offboard can connect to, in one list. Each connector file declares its
 * descriptor (descriptor.ts: type, config schema, secret fields, capabilities, factory) next to its
 * config schema; config parsing (workers/config.ts) builds the `systems` union from these, and the
 * worker (workers/create-worker.ts) creates connectors through them. A new system type is its
 * connector file and one line here.
 */
import { z } from 'zod';
import type { SecretWrap } from '../../model/api-config.js';
import type { ConnectorDeps, ConnectorDescriptor } from './descriptor.js';
import { entraConnector } from './entra.js';
import { githubConnector } from './github.js';
import { googleWorkspaceConnector } from './google-workspace.js';
import { keycloakConnector } from './keycloak.js';
import { ldapConnector } from './ldap.js';
import { manualConnector } from './manual.js';
import { oktaConnector } from './okta.js';
import { postgresConnector } from './postgres.js';
import { salesforceConnector } from './salesforce.js';
import { scimConnector } from './scim.js';
import { slackConnector } from './slack.js';
import { ssfConnector } from './ssf.js';
import type { Connector } from './types.js';

export const connectorRegistry = [
  ldapConnector,
  postgresConnector,
  manualConnector,
  scimConnector,
  slackConnector,
  githubConnector,
  salesforceConnector,
  ssfConnector,
  keycloakConnector,
  entraConnector,
  googleWorkspaceConnector,
  oktaConnector,
] as const;

type Registered = (typeof connectorRegistry)[number];
export type SystemType = Registered['type'];
export const systemTypes: readonly SystemType[] = connectorRegistry.map((descriptor) => descriptor.type);

/** One configured system, secrets resolved: a union discriminated by `type`. */
export type SystemConfig = Registered extends infer D
  ? D extends ConnectorDescriptor<string, infer S>
    ? z.output<S>
    : never
  : never;

/** How the config file writes a secret: `{ env: NAME }` (a literal string is refused by the loader). */
export type SecretInput = { env: string } | string;
type Head<P extends string> = P extends `${infer H}.${string}` ? H : P;
type Tail<P extends string, H extends PropertyKey> = P extends `${H & string}.${infer R}` ? R : never;
/** `T` with the value at each dotted path in `P` replaced by a SecretInput. */
type WithSecretInputs<T, P extends string> = [P] extends [never]
  ? T
  : {
      [K in keyof T]: K extends P
        ? SecretInput | Extract<T[K], undefined>
        : K extends Head<P>
          ? WithSecretInputs<NonNullable<T[K]>, Tail<P, K>> | Extract<T[K], undefined>
          : T[K];
    };
/** One system as the config file gives it. */
export type SystemInput = Registered extends infer D
  ? D extends ConnectorDescriptor<string, infer S, infer F>
    ? WithSecretInputs<z.input<S>, F>
    : never
  : never;

export function descriptorFor(type: string): ConnectorDescriptor | undefined {
  return (connectorRegistry as readonly ConnectorDescriptor[]).find((descriptor) => descriptor.type === type);
}

/** `schema` with the field at each path (split on ".") wrapped; optional fields stay optional. */
function wrapFields(schema: z.ZodObject, paths: readonly string[][], wrap: SecretWrap, where: string): z.ZodObject {
  const wrapped: Record<string, z.ZodType> = {};
  for (const head of new Set(paths.map((path) => path[0]!))) {
    const field = schema.shape[head];
    if (!field) throw new Error(`${where}: secret field ${head} is not in the config schema`);
    const optional = field instanceof z.ZodOptional;
    const inner = (optional ? field.unwrap() : field) as z.ZodType;
    const rest = paths.filter((path) => path[0] === head && path.length > 1).map((path) => path.slice(1));
    let replaced: z.ZodType;
    if (rest.length === 0) replaced = wrap(inner as z.ZodType<string, string>);
    else if (inner instanceof z.ZodObject) replaced = wrapFields(inner, rest, wrap, `${where}.${head}`);
    else throw new Error(`${where}.${head} is not an object, so it has no secret fields inside`);
    wrapped[head] = optional ? replaced.optional() : replaced;
  }
  return schema.extend(wrapped);
}

/** A descriptor's config schema with its secret fields wrapped (the loader resolves `{ env }`). */
export function configSchemaWithSecrets(descriptor: ConnectorDescriptor, wrap: SecretWrap): z.ZodObject {
  const schema = wrapFields(
    descriptor.configSchema,
    descriptor.secretFields.map((path) => path.split('.')),
    wrap,
    descriptor.type,
  );
  // Refinements go on last: zod 4 refuses `.extend()` on a refined object.
  return descriptor.refine ? schema.superRefine((config, ctx) => descriptor.refine!(config, ctx)) : schema;
}

/**
 * The `systems.<name>` schema: every registered type, secrets wrapped by `wrap`. An unknown or
 * missing `type` is refused with the list of known ones.
 */
export function systemConfigSchemaWith(wrap: SecretWrap): z.ZodType<SystemConfig, SystemInput> {
  const [first, ...rest] = connectorRegistry.map((descriptor) => configSchemaWithSecrets(descriptor, wrap));
  const known = systemTypes.join(', ');
  const union = z.discriminatedUnion('type', [first!, ...rest], {
    error: (issue) => {
      if (issue.code !== 'invalid_union') return undefined;
      const given = (issue.input as { type?: unknown } | undefined)?.type;
      return given === undefined
        ? `a system type is required: one of ${known}`
        : `unknown system type ${JSON.stringify(given)}: one of ${known}`;
    },
  });
  // The union is built at run time, so its inferred type is loose; the registry's types say what it parses.
  return union as unknown as z.ZodType<SystemConfig, SystemInput>;
}

/** Creates the connector for one configured system through its type's descriptor. */
export function createConnector(
  system: string,
  config: SystemConfig,
  shared: Omit<ConnectorDeps, 'system'> = {},
): Connector {
  const descriptor = descriptorFor(config.type);
  if (!descriptor) throw new Error(`system ${system}: unknown type ${config.type}; known: ${systemTypes.join(', ')}`);
  return descriptor.create(config, { ...shared, system });
}

/** A copy of a system's config for logs: every secret field replaced, personal maps counted (per its descriptor). */
export function redactSecrets(config: SystemConfig): Record<string, unknown> {
  const copy = structuredClone(config) as Record<string, unknown>;
  for (const path of descriptorFor(config.type)?.secretFields ?? []) {
    const keys = path.split('.');
    let holder: Record<string, unknown> | undefined = copy;
    for (const key of keys.slice(0, -1)) {
      const next: unknown = holder?.[key];
      holder = typeof next === 'object' && next !== null ? (next as Record<string, unknown>) : undefined;
    }
    const last = keys[keys.length - 1]!;
    if (holder && holder[last] !== undefined) holder[last] = '[redacted]';
  }
  for (const field of descriptorFor(config.type)?.personalFields ?? []) {
    const value = copy[field];
    if (value && typeof value === 'object') copy[field] = `[${Object.keys(value).length} entries]`;
  }
  return copy;
}
