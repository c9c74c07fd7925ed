/**
 * `GET /openapi.json`: the API described as OpenAPI 3.1, generated from the same zod schemas the
 * handlers validate with (`z.toJSONSchema`, JSON Schema 2020-12 as OpenAPI 3.1 uses), so the
 * document cannot drift from what is accepted. The test compares its paths with the routes the
 * server registers.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { auditEventSchema } from '../../model/audit.js';
import { hrEventSchema } from '../../model/hr-event.js';
import { ROLES, type Role } from './auth.js';
import { bambooHrPayloadSchema, WEBHOOK_BODY_LIMIT } from './hr-webhook.js';
import { listFiltersSchema } from '../offboardings.js';
import {
  COMMAND_BODIES,
  COMMAND_POLICIES,
  employeeParamsSchema,
  webhookParamsSchema,
  AUDIT_POLICY,
  HR_LOOKUP_POLICY,
  LIST_POLICY,
  READ_POLICY,
  OPERATOR_BODY_LIMIT,
} from './operators.js';
import type { CommandName } from '../temporal.js';

const errorSchema = z.object({ error: z.string(), detail: z.string() });
const fieldErrorsSchema = errorSchema.extend({ errors: z.array(z.object({ path: z.string(), message: z.string() })) });
const healthSchema = z.object({
  ok: z.boolean(),
  temporal: z.string().describe('"ok" or why not'),
  database: z.string().describe('"ok" or why not'),
});
const hrAcceptedSchema = z.object({
  workflowId: z
    .string()
    .nullable()
    .describe('the offboarding (offboarding-<employeeId>); null when the delivery was ignored'),
  duplicate: z
    .boolean()
    .describe('true when this delivery or this event id was accepted before: nothing was started again'),
  outcome: z.enum(['started', 'joined', 'superseded', 'cancelled', 'nothing_running', 'ignored']),
  detail: z.string().nullable(),
});
const hrEventRecordSchema = z.object({
  webhookId: z.string(),
  eventId: z.string(),
  source: z.enum(['standard-webhooks', 'bamboohr']),
  eventType: z.string(),
  employeeId: z.string(),
  receivedAt: z.string(),
  workflowId: z.string(),
  outcome: z.enum(['started', 'joined', 'superseded', 'cancelled', 'nothing_running']),
  detail: z.string().nullable(),
});
const summarySchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  employeeId: z.string().nullable(),
  state: z.string().describe('running, completed, failed, canceled, terminated, continued_as_new or timed_out'),
  stage: z.string().nullable(),
  mode: z.string().nullable(),
  held: z.boolean().nullable(),
  effectiveAt: z.string().nullable(),
  startedAt: z.string(),
  closedAt: z.string().nullable(),
});
const chainedAuditEventSchema = auditEventSchema.extend({ seq: z.number(), prevHash: z.string(), hash: z.string() });
/** The workflow's `status` query (workflows/messages.ts OffboardingStatus); its main fields. */
const statusSchema = z.looseObject({
  employeeId: z.string(),
  requestId: z.string(),
  phase: z.enum(['planning', 'waiting', 'held', 'running', 'restoring', 'completed', 'cancelled']),
  playbook: z.string().nullable(),
  mode: z.string().nullable(),
  effectiveAt: z.string(),
  slaDeadline: z.string().nullable(),
  stage: z.string().nullable(),
  nextStage: z.object({ name: z.string(), dueAt: z.string() }).nullable(),
  holds: z.array(z.object({ by: z.string(), reason: z.string(), until: z.string().optional(), placedAt: z.string() })),
  expedited: z.object({ by: z.string(), reason: z.string(), at: z.string() }).nullable(),
  cancelled: z.object({ by: z.string(), reason: z.string(), at: z.string() }).nullable(),
  systems: z.array(z.string()),
  accounts: z.record(z.string(), z.string().nullable()),
  actions: z.array(z.looseObject({ id: z.string(), state: z.string(), attempts: z.number() })),
  manualTasks: z.array(z.looseObject({ id: z.string(), state: z.string(), description: z.string() })),
});
const detailSchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  state: z.string(),
  status: statusSchema.nullable(),
  statusUnavailable: z.string().nullable(),
  audit: z.array(chainedAuditEventSchema),
});
const listSchema = z.object({ offboardings: z.array(summarySchema) });
const commandResultSchema = z.object({
  workflowId: z.string(),
  command: z.string(),
  by: z.string().describe("the token's subject"),
  result: z.string(),
});
const verifySchema = z.object({
  ok: z.boolean(),
  rows: z.number(),
  firstBroken: z.object({ seq: z.number(), id: z.string(), problem: z.string() }).optional(),
});

type Auth = 'none' | 'bearer' | 'standardWebhooks' | 'bamboohr';
interface Response {
  description: string;
  schema?: z.ZodType;
}
export interface Operation {
  method: 'get' | 'post';
  /** OpenAPI form: /v1/offboardings/{employeeId} */
  path: string;
  summary: string;
  tags: string[];
  auth: Auth;
  roles?: readonly Role[];
  params?: z.ZodObject;
  query?: z.ZodObject;
  headers?: { name: string; description: string }[];
  body?: { schema: z.ZodType; required: boolean; maxBytes: number };
  responses: Record<number, Response>;
}

const r = {
  badRequest: { description: 'invalid input: every problem listed', schema: fieldErrorsSchema },
  unauthorized: { description: 'no valid bearer token (WWW-Authenticate: Bearer)', schema: errorSchema },
  forbidden: {
    description: "the token's role may not do this (or, for a manager, the person is not a report)",
    schema: errorSchema,
  },
  notFound: { description: 'no offboarding for this person', schema: errorSchema },
  unavailable: { description: 'Temporal or the database did not answer', schema: errorSchema },
} satisfies Record<string, Response>;

const webhookResponses: Record<number, Response> = {
  202: {
    description: 'accepted (or a duplicate of an accepted delivery: same workflow id, nothing started again)',
    schema: hrAcceptedSchema,
  },
  400: {
    description: 'not JSON, or invalid fields (all listed); nothing started, one hr_event_rejected audit row',
    schema: fieldErrorsSchema,
  },
  401: {
    description: 'missing, stale (±5 min) or invalid signature; nothing started, one hr_event_rejected audit row',
    schema: errorSchema,
  },
  409: { description: 'the webhook-id or event id was already used for a different event', schema: errorSchema },
  413: { description: `body larger than ${WEBHOOK_BODY_LIMIT} bytes`, schema: errorSchema },
  415: { description: 'not application/json', schema: errorSchema },
  503: {
    description: 'Temporal or the database did not answer: nothing was kept, retry the delivery',
    schema: errorSchema,
  },
};

const roleText = (roles: readonly Role[], managerReportsOnly?: boolean) =>
  `Roles: ${roles.map((role) => (role === 'manager' && managerReportsOnly ? 'manager (own reports only)' : role)).join(', ')}.`;

const commandText: Record<CommandName, string> = {
  hold: 'Pause before the next stage (optionally until a time).',
  release: 'Lift every hold.',
  expedite: 'Lift holds and run every remaining stage now.',
  cancel: 'Stop, and re-enable the logins this offboarding disabled.',
  retry: "Run a manual task's action again.",
  skip: 'Close a manual task without running it.',
};

export const OPERATIONS: Operation[] = [
  {
    method: 'get',
    path: '/healthz',
    summary: 'Whether Temporal and the database answer',
    tags: ['service'],
    auth: 'none',
    responses: {
      200: { description: 'both answer', schema: healthSchema },
      503: { description: 'one does not; says which', schema: healthSchema },
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    tags: ['service'],
    auth: 'none',
    responses: { 200: { description: 'OpenAPI 3.1' } },
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics: answers by route and status, HR deliveries accepted and rejected',
    tags: ['service'],
    auth: 'none',
    responses: { 200: { description: 'Prometheus text format' } },
  },
  {
    method: 'post',
    path: '/v1/hr/events',
    summary: 'An HR event (generic JSON), signed with Standard Webhooks',
    tags: ['hr'],
    auth: 'standardWebhooks',
    headers: [
      { name: 'webhook-id', description: 'the delivery id: the idempotency key' },
      { name: 'webhook-timestamp', description: 'Unix seconds; within ±5 minutes' },
      { name: 'webhook-signature', description: 'space-separated v1,<base64 HMAC-SHA256 of "id.timestamp.body">' },
    ],
    body: { schema: hrEventSchema, required: true, maxBytes: WEBHOOK_BODY_LIMIT },
    responses: webhookResponses,
  },
  {
    method: 'post',
    path: '/v1/hr/bamboohr',
    summary: 'A BambooHR event-based webhook (employee.updated)',
    tags: ['hr'],
    auth: 'bamboohr',
    headers: [
      { name: 'X-BambooHR-Timestamp', description: 'Unix seconds; within ±5 minutes' },
      { name: 'X-BambooHR-Signature', description: 'hex HMAC-SHA256 of the raw body followed by the timestamp' },
    ],
    body: { schema: bambooHrPayloadSchema, required: true, maxBytes: WEBHOOK_BODY_LIMIT },
    responses: {
      ...webhookResponses,
      202: {
        description: 'accepted, a duplicate, or ignored (no termination field changed)',
        schema: hrAcceptedSchema,
      },
    },
  },
  {
    method: 'get',
    path: '/v1/hr/events/{webhookId}',
    summary: 'What became of an accepted HR delivery',
    tags: ['hr'],
    auth: 'bearer',
    roles: HR_LOOKUP_POLICY.roles,
    params: webhookParamsSchema,
    responses: {
      200: { description: 'the delivery', schema: hrEventRecordSchema },
      400: r.badRequest,
      401: r.unauthorized,
      403: r.forbidden,
      404: { description: 'no delivery with this webhook-id', schema: errorSchema },
    },
  },
  {
    method: 'get',
    path: '/v1/offboardings',
    summary: 'List offboardings (a Temporal visibility query; a manager sees their reports only)',
    tags: ['offboardings'],
    auth: 'bearer',
    roles: LIST_POLICY.roles,
    query: listFiltersSchema,
    responses: {
      200: { description: 'newest first', schema: listSchema },
      400: r.badRequest,
      401: r.unauthorized,
      403: r.forbidden,
      503: r.unavailable,
    },
  },
  {
    method: 'get',
    path: '/v1/offboardings/{employeeId}',
    summary: 'One offboarding: its status and its audit events',
    tags: ['offboardings'],
    auth: 'bearer',
    roles: READ_POLICY.roles,
    params: employeeParamsSchema,
    responses: {
      200: { description: 'status (null if no worker answered) and audit trail', schema: detailSchema },
      400: r.badRequest,
      401: r.unauthorized,
      403: r.forbidden,
      404: r.notFound,
      503: r.unavailable,
    },
  },
  ...(Object.keys(COMMAND_BODIES) as CommandName[]).map((name): Operation => ({
    method: 'post',
    path: `/v1/offboardings/{employeeId}/${name}`,
    summary: `${commandText[name]} ${roleText(COMMAND_POLICIES[name].roles, COMMAND_POLICIES[name].managerReportsOnly)} Attributed to the token's subject.`,
    tags: ['commands'],
    auth: 'bearer',
    roles: COMMAND_POLICIES[name].roles,
    params: employeeParamsSchema,
    body: { schema: COMMAND_BODIES[name], required: name !== 'release', maxBytes: OPERATOR_BODY_LIMIT },
    responses: {
      200: { description: 'accepted by the workflow', schema: commandResultSchema },
      400: r.badRequest,
      401: r.unauthorized,
      403: r.forbidden,
      404: r.notFound,
      409: { description: 'refused by the workflow, with its reason', schema: errorSchema },
      415: { description: 'a body that is not application/json', schema: errorSchema },
      503: r.unavailable,
    },
  })),
  {
    method: 'get',
    path: '/v1/offboardings/{employeeId}/evidence',
    summary: 'The evidence report for one offboarding (not yet available)',
    tags: ['audit'],
    auth: 'bearer',
    roles: AUDIT_POLICY.roles,
    params: employeeParamsSchema,
    responses: {
      401: r.unauthorized,
      403: r.forbidden,
      501: { description: 'not implemented yet', schema: errorSchema },
    },
  },
  {
    method: 'get',
    path: '/v1/audit/verify',
    summary: 'Recompute the audit hash chain',
    tags: ['audit'],
    auth: 'bearer',
    roles: AUDIT_POLICY.roles,
    responses: {
      200: { description: 'ok, rows verified, and the first broken row if any', schema: verifySchema },
      401: r.unauthorized,
      403: r.forbidden,
      503: r.unavailable,
    },
  },
];

type JsonSchema = Record<string, unknown>;
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const generated = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  delete generated.$schema;
  return generated;
}

function parameters(where: 'path' | 'query', schema: z.ZodObject | undefined) {
  if (!schema) return [];
  return Object.entries(schema.shape).map(([name, field]) => ({
    name,
    in: where,
    required: where === 'path' || !(field as z.ZodType).safeParse(undefined).success,
    schema: jsonSchema(field as z.ZodType, 'input'),
  }));
}

const version = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
      .version;
  } catch {
    return '0.0.0';
  }
})();

/** The document; `extra`: operations served only with some config (the Shared Signals metadata). */
export function buildOpenApi(extra: Operation[] = []): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of [...OPERATIONS, ...extra]) {
    const operation: Record<string, unknown> = {
      summary: op.summary,
      tags: op.tags,
      security: op.auth === 'none' ? [] : [{ [op.auth]: [] }],
      parameters: [
        ...parameters('path', op.params),
        ...parameters('query', op.query),
        ...(op.headers ?? []).map((h) => ({
          name: h.name,
          in: 'header',
          required: true,
          description: h.description,
          schema: { type: 'string' },
        })),
      ],
      responses: Object.fromEntries(
        Object.entries(op.responses).map(([status, response]) => [
          status,
          {
            description: response.description,
            ...(response.schema
              ? { content: { 'application/json': { schema: jsonSchema(response.schema, 'output') } } }
              : {}),
          },
        ]),
      ),
    };
    if (op.roles) {
      operation['x-roles'] = op.roles;
      operation.description = roleText(op.roles, op.roles.includes('manager') && op.path.includes('{employeeId}'));
    }
    if (op.body) {
      operation.requestBody = {
        required: op.body.required,
        description: `application/json, at most ${op.body.maxBytes} bytes`,
        content: { 'application/json': { schema: jsonSchema(op.body.schema, 'input') } },
      };
    }
    (paths[op.path] ??= {})[op.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'offboard',
      version,
      description: `Access deprovisioning: HR events start offboardings; operators, managers and auditors follow and steer them. Roles: ${ROLES.join(', ')}. Errors are JSON { error, detail }.`,
    },
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: "a token from the config's api.tokens; its subject is recorded as who sent each command",
        },
        standardWebhooks: {
          type: 'apiKey',
          in: 'header',
          name: 'webhook-signature',
          description:
            'Standard Webhooks over "webhook-id.webhook-timestamp.body": v1 (HMAC-SHA256 with a secret from api.webhookSecrets, whsec_ prefix optional) or v1a (ed25519, checked with a whpk_ public key from api.webhookPublicKeys)',
        },
        bamboohr: {
          type: 'apiKey',
          in: 'header',
          name: 'X-BambooHR-Signature',
          description: 'hex HMAC-SHA256 with api.bamboohrSecret over the body followed by X-BambooHR-Timestamp',
        },
      },
    },
  };
}
