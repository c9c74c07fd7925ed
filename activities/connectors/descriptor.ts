/**
 * What the connector registry (registry.ts) knows about one type of system, declared by the
 * connector's own file next to its config schema: config parsing, secret handling and worker
 * assembly read this and nothing else, so adding a system touches its file and one registry line.
 */
import type { z } from 'zod';
import type { ActionKind } from '../../model/policy.js';
import type { SetSigner } from '../../workers/ssf-signing-key.js';
import type { Connector } from './types.js';

/**
 * What the connector can do, as documentation next to its schema: nothing reads it yet. Each
 * connector's `apply` answers `not_applicable` itself (with its reason) for the kinds left out.
 */
export interface ConnectorCapabilities {
  /** The action kinds the connector carries out in the system. */
  actions: readonly ActionKind[];
  /** Discovery reads the person's account from the system (false: a presumed account, `manual`). */
  discover: boolean;
  /** The verification sweep after a stage can read the system back (false: left out of it). */
  verify: boolean;
  /** `check()` reaches the system at start-up (workers/reachability.ts). */
  check: boolean;
  /** Actions become tasks for a person instead of calls (apps with no API). */
  manualTasks?: boolean;
}

/** What a factory gets besides its config. */
export interface ConnectorDeps {
  /** The system's name in the config (`systems.<name>`), the connector's `system`. */
  system: string;
  /** The Shared Signals transmitter (the config's `sharedSignals`: issuer and signing key), for `ssf` receivers. */
  sharedSignals?: SetSigner;
}

export interface ConnectorDescriptor<
  Type extends string = string,
  Schema extends z.ZodObject = z.ZodObject,
  Secret extends string = string,
> {
  /** The config's `type`; the schema's `type` literal. */
  type: Type;
  /** The system's settings as the connector receives them, secrets as plain strings. */
  configSchema: Schema;
  /**
   * Dotted paths into configSchema (`app.privateKey`) of every secret: the config file must give
   * them as `{ env: NAME }` (workers/config.ts), and redactSecrets() hides them from logs.
   */
  secretFields: readonly Secret[];
  /** Top-level fields that hold personal data (a map of HR ids to accounts): logged as a count. */
  personalFields?: readonly (keyof z.output<Schema> & string)[];
  /** Checks across fields, run after the secrets are resolved (e.g. "token or app, not both"). */
  refine?(config: z.output<Schema>, ctx: z.RefinementCtx): void;
  capabilities: ConnectorCapabilities;
  create(config: z.output<Schema>, deps: ConnectorDeps): Connector;
}

/** Keeps the literal type and secret paths, so config types stay one per system. */
export function defineConnector<const Type extends string, Schema extends z.ZodObject, const Secret extends string>(
  descriptor: ConnectorDescriptor<Type, Schema, Secret>,
): ConnectorDescriptor<Type, Schema, Secret> {
  return descriptor;
}
