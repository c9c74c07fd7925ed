/**
 * HR deliveries: the signed webhook that starts (or cancels) an offboarding.
 *
 * ## `POST /v1/hr/events` — the generic event, signed with Standard Webhooks
 *
 * The body is the generic HR event (`model/hr-event.ts`), as JSON. Headers: `webhook-id` (the
 * delivery's idempotency key), `webhook-timestamp` (Unix seconds) and `webhook-signature`: one or
 * more space-separated entries over `${webhook-id}.${webhook-timestamp}.${raw body}`: `v1,<base64
 * HMAC-SHA256>` keyed with the base64-decoded part of a `whsec_…` secret (`api.webhookSecrets`; the
 * prefix may be left out, as the reference libraries allow), or `v1a,<base64 ed25519 signature>`
 * checked with a `whpk_…` public key (`api.webhookPublicKeys`; the specification prefers these,
 * since the receiver holds nothing that can sign). Any one valid entry under any one configured
 * secret or key passes, so a secret is rotated by adding the new one, moving the sender over,
 * then removing the old one. Entries of other versions are ignored. The timestamp must be within
 * ±5 minutes.
 *
 * The check runs here, on the raw bytes, with node:crypto's `timingSafeEqual` over the decoded
 * 32-byte MACs. The `standardwebhooks` package (1.1.1, used by the tests to sign) was read and
 * not used for verifying, because it signs `payload.toString()`: a non-UTF-8 body is decoded
 * lossily before the MAC, so the bytes verified are not quite the bytes received; and it reads
 * the timestamp with `parseInt` (so `1700000000abc` passes). Its comparison is constant-time.
 *
 * Order of checks: size (413, before the body is read), media type (415), signature (401), JSON
 * and then every field (400, all problems listed at once), then the dedupe table: 202 with the
 * offboarding's workflow id, `duplicate: true` for a delivery or an event id seen before (same
 * workflow id, nothing started again). A rejected delivery starts nothing and writes nothing but
 * one `hr_event_rejected` audit row: reason, webhook id, status; never the body, a secret or a
 * signature. Past 60 refusals a minute from one address, further ones are counted into one
 * summary row per minute instead (`rejection-ledger.ts`): the append-only audit cannot be flooded. `termination_rescinded` cancels the running offboarding (Update `cancel`, by
 * `hr-system`) and never starts one: outcome `cancelled`, or `nothing_running` with the reason.
 * A future effective time is accepted as is: the workflow waits for it durably. A new event for a
 * person whose offboarding is running is handed to it: `superseded` when it goes further or sooner
 * (a security termination during a voluntary one's notice period; the plan is replaced), else
 * `joined`, with the reason in `detail`.
 *
 * ## `POST /v1/hr/bamboohr` — BambooHR's event-based webhook
 *
 * Signature: `X-BambooHR-Signature` = lower-case hex HMAC-SHA256, keyed with the webhook's
 * private key (its UTF-8 bytes), over the raw body immediately followed by the
 * `X-BambooHR-Timestamp` header value (no separator). BambooHR's own page says only "calculated
 * using the payload, the timestamp, and your private key"; the order and encoding are taken from
 * its PHP sample as quoted by integrations that verify it (Botpress' BambooHR integration, Nango's
 * docs: "the request body followed by X-BambooHR-Timestamp"). The timestamp is read as Unix
 * seconds (an ISO time is accepted too) and must be within ±5 minutes. Only the JSON encoding is
 * accepted (415 for BambooHR's form-post encoding).
 *
 * Payload: `{ type: 'employee.updated', timestamp, data: { companyId, employeeId, changedFields } }`.
 * Mapping to the generic event:
 *
 * | generic field | from |
 * | --- | --- |
 * | `type` | `termination` when `changedFields` holds one of `api.bamboohrMapping.terminationFields` (default `status`, `terminationDate`); every other delivery (other types, other fields) is answered 202 `ignored` |
 * | `employeeId` | `data.employeeId` (BambooHR's own id: the directory must know people by it) |
 * | `effectiveAt` | the payload's `timestamp`: BambooHR fires history-tracked changes when they take effect |
 * | `eventId` | `bamboohr:<companyId>:<employeeId>:<timestamp>` |
 * | `reason`, `employmentType` | `api.bamboohrMapping.reason` (default `voluntary`) and `.employmentType` (default `employee`) |
 * | webhook id (dedupe) | `bamboohr:<sha256 of the body>`: a retry re-sends the same body with a new timestamp |
 *
 * What it cannot know: the payload names the fields that changed, not their values, so a status
 * going back to Active (a rehire) looks like a termination, and a termination date entered weeks
 * ahead is taken as effective at the delivery's time if BambooHR sends it then. The reason and the
 * employment type are not in the payload at all. Monitor only the fields that mean "left" in the
 * BambooHR webhook, and cancel a mistaken offboarding with `offboard cancel`; where that is not
 * good enough, put a relay in front that reads the values from BambooHR's API and sends the
 * generic event (below). BambooHR cannot rescind: a rescinded termination needs an operator's
 * cancel or a relay's `termination_rescinded`.
 *
 * ## Workday (and any HRIS without signed webhooks): a relay
 *
 * Workday sends outbound SOAP notifications on business-process events (Terminate Employee,
 * End Contingent Worker Contract) or is polled through a RaaS report, authenticated by basic
 * auth or not at all — no HMAC. A relay next to it (in the company network, reached by Workday
 * over TLS with basic auth or mutual TLS) converts each event to the generic JSON and delivers it
 * here signed with Standard Webhooks:
 *
 * | generic field | Workday source |
 * | --- | --- |
 * | `eventId` | `workday:<business process event WID>` (stable across re-sends and report polls) |
 * | `type` | Terminate Employee → `termination`; End Contingent Worker Contract → `contract_end`; job change → `role_change`; a rescinded termination → `termination_rescinded` (with its own event id) |
 * | `employeeId` | `Employee_ID` / `Contingent_Worker_ID` |
 * | `reason` | the primary termination reason's category: voluntary → `voluntary`, involuntary → `involuntary`, misconduct / security → `security` |
 * | `employmentType` | worker type: employee → `employee`, contingent worker → `contractor` (or `vendor`) |
 * | `effectiveAt` | termination date with the end of the last day of work, in the worker's time zone, as ISO 8601 with offset |
 * | `email`, `newRole` | work email (optional); the new position's role key for a role change |
 *
 * The relay signs each attempt afresh (`webhook-timestamp` = now) but keeps the `webhook-id`, and
 * retries with back-off for as long as it needs: both the webhook id and the event id dedupe.
 */
import { createHash, createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { AuditStore } from '../../activities/audit.js';
import { hrEventSchema, requestFromHrEvent, type HrEvent } from '../../model/hr-event.js';
import { planningProblems } from '../../model/plan.js';
import type { Policy } from '../../model/policy.js';
import { employeeIdSchema, offboardingRequestSchema, workflowIdFor } from '../../model/request.js';
import { CommandRefusedError, InvalidRequestError, sendCommand, startOffboarding } from '../temporal.js';
import { replyError, withoutKeyPrefix, type ApiConfig } from './auth.js';
import type { ClaimResult, HrDelivery, HrEventsStore, HrOutcome } from './hr-events-store.js';
import type { RejectionLedger } from './rejection-ledger.js';

export const WEBHOOK_BODY_LIMIT = 256 * 1024;
export const TIMESTAMP_TOLERANCE_SECONDS = 5 * 60;
/** The audit's offboarding id for deliveries that never became an offboarding. */
export const REJECTED_OFFBOARDING_ID = 'hr-webhook';

export interface HrWebhookDeps {
  client: Client;
  hrEvents: HrEventsStore;
  audit: AuditStore;
  config: ApiConfig;
  /** The worker's policy (same config file): what it could not plan is refused with 400, before the 202. */
  policy: Policy;
  log: FastifyBaseLogger;
  /** Where refused deliveries are recorded (bounded per sender). */
  rejections: RejectionLedger;
  taskQueue?: string;
  searchAttributes?: boolean;
  /** Milliseconds since the epoch (tests move the clock). */
  now: () => number;
  /** How long a start or cancel may take before the delivery is refused with 503 (the sender retries). */
  temporalTimeoutMs: number;
}

type Source = HrDelivery['source'];
type Verified = { ok: true } | { ok: false; reason: string };

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
};

/** Printable ASCII without spaces, at most 200 characters: what is stored and logged as a webhook id. */
const safeWebhookId = (value: string | undefined): string | null =>
  value !== undefined && /^[\x21-\x7e]{1,200}$/.test(value) ? value : null;

function withinTolerance(
  timestampSeconds: number,
  nowMs: number,
  toleranceSeconds = TIMESTAMP_TOLERANCE_SECONDS,
): string | undefined {
  const age = Math.floor(nowMs / 1000) - timestampSeconds;
  const limit = toleranceSeconds === TIMESTAMP_TOLERANCE_SECONDS ? '5 minutes' : `${toleranceSeconds} s`;
  if (age > toleranceSeconds) return `the timestamp is more than ${limit} old`;
  if (-age > toleranceSeconds) return `the timestamp is more than ${limit} in the future`;
  return undefined;
}

/** Decodes a secret (`whsec_<base64>` or the bare base64, as the reference libraries accept) to the HMAC key. */
export const webhookKey = (secret: string): Buffer => Buffer.from(withoutKeyPrefix(secret), 'base64');

/** Decodes a `whpk_<base64>` (or bare base64) ed25519 public key. */
export const webhookPublicKey = (key: string): KeyObject =>
  createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(withoutKeyPrefix(key), 'base64').toString('base64url') },
    format: 'jwk',
  });

/** What a Standard Webhooks signature is checked with: `v1` HMAC keys and `v1a` ed25519 public keys. */
export interface WebhookKeys {
  hmac: readonly Buffer[];
  ed25519: readonly KeyObject[];
}

export const webhookKeysFrom = (config: Pick<ApiConfig, 'webhookSecrets' | 'webhookPublicKeys'>): WebhookKeys => ({
  hmac: config.webhookSecrets.map(webhookKey),
  ed25519: config.webhookPublicKeys.map(webhookPublicKey),
});

/**
 * Standard Webhooks verification over the raw body: any `v1` (HMAC-SHA256) signature under any
 * secret, or any `v1a` (ed25519) signature under any public key, passes. Entries of other
 * versions are ignored, as the specification says.
 */
export function verifyStandardWebhook(
  raw: Buffer,
  headers: IncomingHttpHeaders,
  keys: WebhookKeys,
  nowMs: number,
  toleranceSeconds = TIMESTAMP_TOLERANCE_SECONDS,
): Verified {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signature = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signature)
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' };
  if (!safeWebhookId(id)) return { ok: false, reason: 'webhook-id must be 1-200 printable characters without spaces' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'webhook-timestamp must be Unix seconds' };
  const stale = withinTolerance(Number(timestamp), nowMs, toleranceSeconds);
  if (stale) return { ok: false, reason: `webhook-timestamp: ${stale}` };
  if (keys.hmac.length === 0 && keys.ed25519.length === 0)
    return {
      ok: false,
      reason: 'no webhook secrets or public keys are configured (api.webhookSecrets, api.webhookPublicKeys)',
    };
  const entries = signature.split(' ');
  const decoded = (pattern: RegExp) =>
    entries
      .map((entry) => pattern.exec(entry)?.[1])
      .filter((b64): b64 is string => b64 !== undefined)
      .map((b64) => Buffer.from(b64, 'base64'));
  const macs = decoded(/^v1,([A-Za-z0-9+/]{43}=)$/);
  const ed25519Signatures = decoded(/^v1a,([A-Za-z0-9+/]{86}==)$/);
  if (macs.length === 0 && ed25519Signatures.length === 0)
    return { ok: false, reason: 'webhook-signature has no v1 or v1a signature' };
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, 'utf8'), raw]);
  let valid = false;
  for (const key of keys.hmac) {
    const expected = createHmac('sha256', key).update(signed).digest();
    for (const candidate of macs) if (timingSafeEqual(expected, candidate)) valid = true;
  }
  for (const key of keys.ed25519)
    for (const candidate of ed25519Signatures) if (verify(null, signed, key, candidate)) valid = true;
  return valid ? { ok: true } : { ok: false, reason: 'no signature matches a configured secret or public key' };
}

/** BambooHR: hex HMAC-SHA256 over the raw body followed by the timestamp header. */
export function verifyBambooHrSignature(
  raw: Buffer,
  headers: IncomingHttpHeaders,
  secret: string | undefined,
  nowMs: number,
): Verified {
  if (!secret) return { ok: false, reason: 'BambooHR deliveries are not configured (api.bamboohrSecret)' };
  const timestamp = header(headers, 'x-bamboohr-timestamp');
  const signature = header(headers, 'x-bamboohr-signature');
  if (!timestamp || !signature)
    return { ok: false, reason: 'missing X-BambooHR-Timestamp or X-BambooHR-Signature header' };
  if (timestamp.length > 40) return { ok: false, reason: 'X-BambooHR-Timestamp is not a time' };
  const seconds = /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : Math.floor(Date.parse(timestamp) / 1000);
  if (Number.isNaN(seconds)) return { ok: false, reason: 'X-BambooHR-Timestamp is not a time' };
  const stale = withinTolerance(seconds, nowMs);
  if (stale) return { ok: false, reason: `X-BambooHR-Timestamp: ${stale}` };
  if (!/^[0-9a-fA-F]{64}$/.test(signature))
    return { ok: false, reason: 'X-BambooHR-Signature is not a hex SHA-256 HMAC' };
  const expected = createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.concat([raw, Buffer.from(timestamp, 'utf8')]))
    .digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'))
    ? { ok: true }
    : { ok: false, reason: 'the signature does not match the BambooHR private key' };
}

const bambooId = z.union([z.string(), z.number().int().nonnegative()]).transform(String);

/** BambooHR's event-based webhook payload (JSON encoding). */
export const bambooHrPayloadSchema = z.object({
  type: z.string().min(1).max(100),
  timestamp: z
    .string()
    .max(40)
    .refine((value) => !Number.isNaN(Date.parse(value)), 'an ISO 8601 date-time'),
  data: z.object({
    companyId: bambooId.pipe(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a BambooHR company id')),
    employeeId: bambooId.pipe(employeeIdSchema),
    changedFields: z.array(z.string().max(200)).max(1000).default([]),
  }),
});
export type BambooHrPayload = z.infer<typeof bambooHrPayloadSchema>;

/** Maps a BambooHR delivery onto the generic event, or says why it means no offboarding. */
export function mapBambooHrEvent(
  payload: BambooHrPayload,
  mapping: ApiConfig['bamboohrMapping'],
): { event: HrEvent } | { ignored: string } {
  if (payload.type !== 'employee.updated') return { ignored: `BambooHR ${payload.type} events start no offboarding` };
  const fields = payload.data.changedFields.filter((field) => mapping.terminationFields.includes(field));
  if (fields.length === 0)
    return {
      ignored: `none of the changed fields means a termination (watched: ${mapping.terminationFields.join(', ')})`,
    };
  const effectiveAt = new Date(Date.parse(payload.timestamp)).toISOString();
  return {
    event: hrEventSchema.parse({
      eventId: `bamboohr:${payload.data.companyId}:${payload.data.employeeId}:${effectiveAt}`,
      type: 'termination',
      employeeId: payload.data.employeeId,
      reason: mapping.reason,
      employmentType: mapping.employmentType,
      effectiveAt,
    }),
  };
}

export interface FieldError {
  path: string;
  message: string;
}

const issuesOf = (error: z.ZodError, rename: Record<string, string> = {}): FieldError[] =>
  error.issues.map((issue) => {
    const path = issue.path.join('.');
    return { path: rename[path] ?? (path || '(root)'), message: issue.message };
  });

/** Requirements that depend on the event type; checked on the raw object so they are listed with every other problem. */
function conditionalIssues(raw: unknown): FieldError[] {
  if (typeof raw !== 'object' || raw === null) return [];
  const event = raw as Record<string, unknown>;
  const issues: FieldError[] = [];
  if (event.type === 'termination' && event.reason === undefined)
    issues.push({ path: 'reason', message: 'required for a termination: voluntary, involuntary or security' });
  if (event.type === 'role_change' && event.newRole === undefined)
    issues.push({ path: 'newRole', message: 'required for a role change: the role the person moves into' });
  return issues;
}

/**
 * Parses and validates the generic event, listing every problem; with the worker's policy, also
 * what the worker could not plan (an unknown `newRole`), so nothing is accepted that fails later.
 */
export function parseHrEvent(
  raw: unknown,
  policy?: Policy,
): { ok: true; event: HrEvent } | { ok: false; errors: FieldError[] } {
  const parsed = hrEventSchema.safeParse(raw);
  const extra = conditionalIssues(raw);
  if (!parsed.success || extra.length > 0) {
    const errors = [...(parsed.success ? [] : issuesOf(parsed.error)), ...extra];
    return {
      ok: false,
      errors: errors.filter((e, i) => errors.findIndex((o) => o.path === e.path && o.message === e.message) === i),
    };
  }
  const request = requestFromHrEvent(parsed.data, 'hr-system');
  if (request) {
    const checked = offboardingRequestSchema.safeParse(request);
    if (!checked.success)
      return {
        ok: false,
        errors: issuesOf(checked.error, {
          'subject.employeeId': 'employeeId',
          'subject.email': 'email',
          requestId: 'eventId',
        }),
      };
    // Named by the event's own fields (the request's `trigger` is the event's `type`).
    const unplannable = policy ? planningProblems(checked.data, policy) : [];
    if (unplannable.length > 0)
      return {
        ok: false,
        errors: unplannable.map((p) => ({ path: p.path === 'trigger' ? 'type' : p.path, message: p.message })),
      };
  }
  return { ok: true, event: parsed.data };
}

/** Decodes a body as strict UTF-8 JSON. */
function parseJson(raw: Buffer): { ok: true; value: unknown } | { ok: false; message: string } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return { ok: false, message: 'the body is not UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, message: 'the body is not valid JSON' };
  }
}

export const isJsonContentType = (value: string | undefined) =>
  value !== undefined && /^application\/json\s*(;|$)/i.test(value);

/** The employee id a rejected body names, when it parses and is a valid id; else `unknown`. */
function employeeIdOf(raw: Buffer | undefined, source: Source): string {
  if (!raw || raw.length === 0) return 'unknown';
  try {
    const value = JSON.parse(raw.toString('utf8')) as { employeeId?: unknown; data?: { employeeId?: unknown } } | null;
    const candidate = source === 'bamboohr' ? value?.data?.employeeId : value?.employeeId;
    const id = typeof candidate === 'number' ? String(candidate) : candidate;
    const parsed = employeeIdSchema.safeParse(id);
    return parsed.success ? parsed.data : 'unknown';
  } catch {
    return 'unknown';
  }
}

const bodyHash = (raw: Buffer) => createHash('sha256').update(raw).digest('hex');

function deliveryId(request: FastifyRequest, source: Source): string | null {
  if (source === 'standard-webhooks') return safeWebhookId(header(request.headers, 'webhook-id'));
  return Buffer.isBuffer(request.body) ? `bamboohr:${bodyHash(request.body)}` : null;
}

export const sourceOfRoute = (url: string | undefined): Source | undefined =>
  url === '/v1/hr/events' ? 'standard-webhooks' : url === '/v1/hr/bamboohr' ? 'bamboohr' : undefined;

/**
 * Answers a refused delivery and records it: one `hr_event_rejected` audit row with the reason,
 * the webhook id and the status. Nothing else is written and nothing is started.
 */
export async function rejectDelivery(
  deps: Pick<HrWebhookDeps, 'rejections' | 'log'>,
  request: FastifyRequest,
  reply: FastifyReply,
  source: Source,
  rejection: { status: number; error: string; detail: string; errors?: FieldError[] },
) {
  const webhookId = deliveryId(request, source);
  const employeeId = employeeIdOf(Buffer.isBuffer(request.body) ? request.body : undefined, source);
  const reason = rejection.errors
    ? `${rejection.detail}: ${rejection.errors.map((e) => e.path).join(', ')}`
    : rejection.detail;
  deps.log.warn({ source, webhookId, status: rejection.status, reason }, 'hr event rejected');
  await deps.rejections.record(request.ip, {
    employeeId,
    actor: source === 'bamboohr' ? 'bamboohr' : 'hr-webhook',
    details: { reason, webhookId, status: rejection.status, source },
    status: rejection.status,
    source,
  });
  return replyError(
    reply,
    rejection.status,
    rejection.error,
    rejection.detail,
    rejection.errors ? { errors: rejection.errors } : {},
  );
}

export interface HrAccepted {
  workflowId: string | null;
  duplicate: boolean;
  outcome: HrOutcome | 'ignored';
  detail: string | null;
}

export function registerHrWebhookRoutes(app: FastifyInstance, deps: HrWebhookDeps) {
  const keys = webhookKeysFrom(deps.config);
  const deadline = <T>(work: () => Promise<T>) => deps.client.withDeadline(Date.now() + deps.temporalTimeoutMs, work);

  /** Starts the offboarding, or for a rescinded termination cancels the running one. */
  async function act(event: HrEvent, requestedBy: string): Promise<{ outcome: HrOutcome; detail: string | null }> {
    const request = requestFromHrEvent(event, requestedBy);
    if (!request) {
      // Asked first, so that "nothing is running" is never concluded from Temporal being away
      // (sendCommand reads any failed describe as "not found"): that answer is kept for good.
      const workflowId = workflowIdFor(event.employeeId);
      let state: string;
      try {
        state = (await deadline(() => deps.client.workflow.getHandle(workflowId).describe())).status.name;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          return {
            outcome: 'nothing_running',
            detail: `no offboarding for ${event.employeeId} (workflow ${workflowId} not found)`,
          };
        throw err;
      }
      if (state !== 'RUNNING')
        return {
          outcome: 'nothing_running',
          detail: `the offboarding of ${event.employeeId} has already finished (${state.toLowerCase()})`,
        };
      try {
        const result = await deadline(() =>
          sendCommand(deps.client, event.employeeId, 'cancel', {
            by: 'hr-system',
            reason: `termination rescinded (HR event ${event.eventId})`,
          }),
        );
        return { outcome: 'cancelled', detail: result };
      } catch (err) {
        // Refused by the workflow (already cancelled, finished meanwhile); "not found" just after it was found means Temporal is away.
        if (err instanceof CommandRefusedError && !/^no offboarding for /.test(err.message))
          return { outcome: 'nothing_running', detail: err.message };
        throw err;
      }
    }
    const started = await deadline(() =>
      startOffboarding(deps.client, request, {
        taskQueue: deps.taskQueue,
        searchAttributes: deps.searchAttributes,
        policy: deps.policy,
      }),
    );
    if (started.outcome === 'started') return { outcome: 'started', detail: null };
    return {
      outcome: started.outcome,
      detail: `an offboarding for this person was already running (started by request ${started.startedBy}); ${started.detail}`,
    };
  }

  async function accept(
    request: FastifyRequest,
    reply: FastifyReply,
    source: Source,
    webhookId: string,
    event: HrEvent,
  ) {
    const delivery: HrDelivery = {
      webhookId,
      eventId: event.eventId,
      source,
      eventType: event.type,
      employeeId: event.employeeId,
      workflowId: workflowIdFor(event.employeeId),
    };
    let claimed: ClaimResult;
    try {
      claimed = await deps.hrEvents.claim(delivery, () =>
        act(event, source === 'bamboohr' ? 'hr-system:bamboohr' : 'hr-system'),
      );
    } catch (err) {
      if (err instanceof InvalidRequestError)
        return rejectDelivery(deps, request, reply, source, {
          status: 400,
          error: 'invalid_event',
          detail: 'the event is not a valid offboarding request',
          ...(err.errors.length ? { errors: err.errors } : {}),
        });
      deps.log.error({ source, webhookId, reason: (err as Error).message }, 'could not act on an hr event');
      return rejectDelivery(deps, request, reply, source, {
        status: 503,
        error: 'unavailable',
        detail: 'Temporal or the database did not answer; nothing was started, retry the delivery',
      });
    }
    if (claimed.kind === 'conflict') {
      return rejectDelivery(deps, request, reply, source, {
        status: 409,
        error: 'conflict',
        detail: 'this webhook-id or event id was already used for a different event',
      });
    }
    const { record } = claimed;
    const duplicate = claimed.kind === 'duplicate';
    deps.log.info(
      { source, webhookId, eventId: event.eventId, employeeId: event.employeeId, outcome: record.outcome, duplicate },
      'hr event accepted',
    );
    const body: HrAccepted = {
      workflowId: record.workflowId,
      duplicate,
      outcome: record.outcome,
      detail: record.detail,
    };
    return reply.code(202).send(body);
  }

  app.post('/v1/hr/events', { bodyLimit: WEBHOOK_BODY_LIMIT }, async (request, reply) => {
    const reject = (status: number, error: string, detail: string, errors?: FieldError[]) =>
      rejectDelivery(deps, request, reply, 'standard-webhooks', { status, error, detail, errors });
    if (!isJsonContentType(request.headers['content-type']))
      return reject(415, 'unsupported_media_type', 'send the event as application/json');
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const verified = verifyStandardWebhook(raw, request.headers, keys, deps.now());
    if (!verified.ok) return reject(401, 'unauthorized', verified.reason);
    const json = parseJson(raw);
    if (!json.ok) return reject(400, 'invalid_event', json.message, [{ path: '(root)', message: json.message }]);
    const parsed = parseHrEvent(json.value, deps.policy);
    if (!parsed.ok) return reject(400, 'invalid_event', `${parsed.errors.length} invalid field(s)`, parsed.errors);
    return accept(request, reply, 'standard-webhooks', header(request.headers, 'webhook-id')!, parsed.event);
  });

  app.post('/v1/hr/bamboohr', { bodyLimit: WEBHOOK_BODY_LIMIT }, async (request, reply) => {
    const reject = (status: number, error: string, detail: string, errors?: FieldError[]) =>
      rejectDelivery(deps, request, reply, 'bamboohr', { status, error, detail, errors });
    if (!isJsonContentType(request.headers['content-type']))
      return reject(415, 'unsupported_media_type', 'configure the BambooHR webhook to post JSON');
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const verified = verifyBambooHrSignature(raw, request.headers, deps.config.bamboohrSecret, deps.now());
    if (!verified.ok) return reject(401, 'unauthorized', verified.reason);
    const json = parseJson(raw);
    if (!json.ok) return reject(400, 'invalid_event', json.message, [{ path: '(root)', message: json.message }]);
    const payload = bambooHrPayloadSchema.safeParse(json.value);
    if (!payload.success) {
      const errors = issuesOf(payload.error);
      return reject(400, 'invalid_event', `${errors.length} invalid field(s)`, errors);
    }
    const mapped = mapBambooHrEvent(payload.data, deps.config.bamboohrMapping);
    if ('ignored' in mapped) {
      deps.log.info(
        { source: 'bamboohr', type: payload.data.type, employeeId: payload.data.data.employeeId },
        'bamboohr event ignored',
      );
      const body: HrAccepted = { workflowId: null, duplicate: false, outcome: 'ignored', detail: mapped.ignored };
      return reply.code(202).send(body);
    }
    return accept(request, reply, 'bamboohr', `bamboohr:${bodyHash(raw)}`, mapped.event);
  });
}
