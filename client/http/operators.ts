/**
 * The operators', managers' and auditors' endpoints: list and read offboardings, steer them
 * (hold, release, expedite, cancel, retry, skip: Updates, so a refusal comes back as 409 with the
 * workflow's reason), verify the audit chain, look up an HR delivery.
 *
 * Every command's `by` is the bearer token's subject, never the body's: the body schemas are
 * `model/commands.ts` without `by`, and a body that sends one is refused (400). So each command is
 * attributed in the audit to whoever holds the token.
 *
 * The list is `client/offboardings.ts`, shared with the CLI; a manager's is scoped to their reports.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { AuditStore } from '../../activities/audit.js';
import {
  cancelCommandSchema,
  expediteCommandSchema,
  holdCommandSchema,
  releaseCommandSchema,
  retryCommandSchema,
  skipCommandSchema,
} from '../../model/commands.js';
import { employeeIdSchema, workflowIdFor } from '../../model/request.js';
import { buildEvidence, evidenceToCsv, evidenceToHtml, evidenceToJson } from '../evidence.js';
import { anchorFor } from '../evidence-anchor.js';
import { checkpointSettings, fileCheckpointStore, loadPublicKey } from '../../activities/audit-checkpoints.js';
import { checkCheckpoints } from '../../activities/audit-verification.js';
import type { OffboardingStatus } from '../../workflows/messages.js';
import { listFiltersSchema, listOffboardings, stateOf } from '../offboardings.js';
import { StageKey } from '../../workflows/search-attributes.js';
import { CommandRefusedError, sendCommand, type CommandName } from '../temporal.js';
import { guard, replyError, type AccessPolicy, type Authenticator } from './auth.js';
import type { HrEventsStore } from './hr-events-store.js';
import { isJsonContentType } from './hr-webhook.js';

export const OPERATOR_BODY_LIMIT = 64 * 1024;

/** The commands' bodies: model/commands.ts without `by` (always the token's subject), nothing else accepted. */
export const COMMAND_BODIES = {
  hold: holdCommandSchema.omit({ by: true }).strict(),
  release: releaseCommandSchema.omit({ by: true }).strict(),
  expedite: expediteCommandSchema.omit({ by: true }).strict(),
  cancel: cancelCommandSchema.omit({ by: true }).strict(),
  retry: retryCommandSchema.omit({ by: true }).strict(),
  skip: skipCommandSchema.omit({ by: true }).strict(),
} satisfies Record<CommandName, z.ZodType>;

/** Managers may hold and release their reports; everything else is security's. */
export const COMMAND_POLICIES: Record<CommandName, AccessPolicy> = {
  hold: { roles: ['security', 'manager'], managerReportsOnly: true },
  release: { roles: ['security', 'manager'], managerReportsOnly: true },
  expedite: { roles: ['security'] },
  cancel: { roles: ['security'] },
  retry: { roles: ['security'] },
  skip: { roles: ['security'] },
};
export const READ_POLICY: AccessPolicy = { roles: ['security', 'auditor', 'manager'], managerReportsOnly: true };
export const LIST_POLICY: AccessPolicy = { roles: ['security', 'auditor', 'manager'] };
export const AUDIT_POLICY: AccessPolicy = { roles: ['security', 'auditor'] };
export const HR_LOOKUP_POLICY: AccessPolicy = { roles: ['hr-system', 'security', 'auditor'] };

export const employeeParamsSchema = z.object({ employeeId: employeeIdSchema }).strict();
export const webhookParamsSchema = z
  .object({ webhookId: z.string().regex(/^[\x21-\x7e]{1,200}$/, 'a webhook id') })
  .strict();

const formatIssues = (error: z.ZodError) =>
  error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message }));

function invalid(reply: FastifyReply, what: string, error: z.ZodError) {
  const errors = formatIssues(error);
  return replyError(
    reply,
    400,
    'invalid_request',
    `${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    { errors },
  );
}

/** A command's JSON body; an empty body is `{}`. */
function jsonBody(
  request: FastifyRequest,
): { ok: true; value: unknown } | { ok: false; status: number; detail: string } {
  const raw = Buffer.isBuffer(request.body) ? request.body : undefined;
  if (!raw || raw.length === 0) return { ok: true, value: {} };
  if (!isJsonContentType(request.headers['content-type']))
    return { ok: false, status: 415, detail: 'send the body as application/json' };
  try {
    return { ok: true, value: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw)) };
  } catch {
    return { ok: false, status: 400, detail: 'the body is not valid UTF-8 JSON' };
  }
}

export interface OperatorDeps {
  client: Client;
  audit: AuditStore;
  hrEvents: HrEventsStore;
  auth: Authenticator;
  temporalTimeoutMs: number;
}

export function registerOperatorRoutes(app: FastifyInstance, deps: OperatorDeps) {
  const { client, auth } = deps;
  const deadline = <T>(work: () => Promise<T>) => client.withDeadline(Date.now() + deps.temporalTimeoutMs, work);

  app.get('/v1/offboardings', { preHandler: guard(auth, LIST_POLICY) }, async (request, reply) => {
    const filters = listFiltersSchema.safeParse(request.query);
    if (!filters.success) return invalid(reply, 'invalid filter', filters.error);
    const principal = request.principal!;
    const offboardings = await listOffboardings(
      client,
      filters.data,
      principal.role === 'manager' ? principal : undefined,
    );
    return reply.send({ offboardings });
  });

  app.get('/v1/offboardings/:employeeId', { preHandler: guard(auth, READ_POLICY) }, async (request, reply) => {
    const params = employeeParamsSchema.safeParse(request.params);
    if (!params.success) return invalid(reply, 'invalid employee id', params.error);
    const workflowId = workflowIdFor(params.data.employeeId);
    const handle = client.workflow.getHandle(workflowId);
    let description;
    try {
      description = await deadline(() => handle.describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        return replyError(reply, 404, 'not_found', `no offboarding for ${params.data.employeeId}`);
      throw err;
    }
    // The status query needs a worker; when none answers, the audit trail is still shown.
    let status: OffboardingStatus | null = null;
    let statusUnavailable: string | null = null;
    try {
      status = await deadline(() => handle.query<OffboardingStatus>('status'));
    } catch (err) {
      statusUnavailable = `the status query was not answered (is a worker running?): ${(err as Error).message}`;
    }
    const audit = await deps.audit.eventsFor(workflowId);
    return reply.send({
      workflowId,
      runId: description.runId,
      state: stateOf(description.status.name, description.typedSearchAttributes.get(StageKey)),
      status,
      statusUnavailable,
      audit,
    });
  });

  for (const name of Object.keys(COMMAND_BODIES) as CommandName[]) {
    app.post(
      `/v1/offboardings/:employeeId/${name}`,
      { bodyLimit: OPERATOR_BODY_LIMIT, preHandler: guard(auth, COMMAND_POLICIES[name]) },
      async (request, reply) => {
        const params = employeeParamsSchema.safeParse(request.params);
        if (!params.success) return invalid(reply, 'invalid employee id', params.error);
        const body = jsonBody(request);
        if (!body.ok)
          return replyError(
            reply,
            body.status,
            body.status === 415 ? 'unsupported_media_type' : 'invalid_request',
            body.detail,
          );
        const command = COMMAND_BODIES[name].safeParse(body.value);
        if (!command.success)
          return invalid(reply, `invalid ${name} command (\`by\` is taken from your token)`, command.error);
        const by = request.principal!.subject;
        const { employeeId } = params.data;
        const workflowId = workflowIdFor(employeeId);
        // Asked first: sendCommand reads any failed describe as "not found", which must not become a 404 while Temporal is away.
        try {
          await deadline(() => client.workflow.getHandle(workflowId).describe());
        } catch (err) {
          if (err instanceof WorkflowNotFoundError)
            return replyError(reply, 404, 'not_found', `no offboarding for ${employeeId}`);
          throw err;
        }
        try {
          const result = await deadline(() => sendCommand(client, employeeId, name, { ...command.data, by }));
          request.log.info({ command: name, employeeId, by }, 'command accepted');
          return reply.send({ workflowId, command: name, by, result });
        } catch (err) {
          if (err instanceof CommandRefusedError && !/^no offboarding for /.test(err.message)) {
            request.log.info({ command: name, employeeId, by, refused: err.message }, 'command refused');
            return replyError(reply, 409, 'refused', err.message);
          }
          if (err instanceof CommandRefusedError)
            return replyError(reply, 503, 'unavailable', 'Temporal did not answer; retry the command');
          throw err;
        }
      },
    );
  }

  app.get('/v1/audit/verify', { preHandler: guard(auth, AUDIT_POLICY) }, async (_request, reply) =>
    reply.send(await deps.audit.verify()),
  );

  // The evidence report, from the audit log alone (client/evidence.ts): what an auditor reads.
  const evidenceQuerySchema = z.object({ format: z.enum(['html', 'csv', 'json']).default('json') }).strict();
  app.get(
    '/v1/offboardings/:employeeId/evidence',
    { preHandler: guard(auth, AUDIT_POLICY) },
    async (request, reply) => {
      const params = employeeParamsSchema.safeParse(request.params);
      if (!params.success) return invalid(reply, 'invalid employee id', params.error);
      const query = evidenceQuerySchema.safeParse(request.query ?? {});
      if (!query.success) return invalid(reply, 'invalid query', query.error);
      const workflowId = workflowIdFor(params.data.employeeId);
      const [events, chain] = await Promise.all([deps.audit.eventsFor(workflowId), deps.audit.verify()]);
      if (events.length === 0)
        return replyError(reply, 404, 'not_found', `no audit events for ${params.data.employeeId}`);
      // Checked against the signed checkpoints, like `offboard evidence`: the headline says whether it is verified.
      const settings = checkpointSettings();
      const check = await checkCheckpoints(
        deps.audit,
        fileCheckpointStore(settings.checkpointsFile),
        loadPublicKey(settings),
      );
      const evidence = buildEvidence(events, chain, { anchor: await anchorFor(deps.audit, check, events) });
      if (query.data.format === 'html') return reply.type('text/html; charset=utf-8').send(evidenceToHtml(evidence));
      if (query.data.format === 'csv') {
        return reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="evidence-${params.data.employeeId}.csv"`)
          .send(evidenceToCsv(evidence));
      }
      return reply.type('application/json').send(evidenceToJson(evidence));
    },
  );

  app.get('/v1/hr/events/:webhookId', { preHandler: guard(auth, HR_LOOKUP_POLICY) }, async (request, reply) => {
    const params = webhookParamsSchema.safeParse(request.params);
    if (!params.success) return invalid(reply, 'invalid webhook id', params.error);
    const record = await deps.hrEvents.find(params.data.webhookId);
    if (!record) return replyError(reply, 404, 'not_found', 'no delivery with this webhook-id was accepted');
    return reply.send(record);
  });
}
