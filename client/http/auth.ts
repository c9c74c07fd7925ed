/**
 * Who may call the HTTP API, and how they prove it.
 *
 * Operators, managers, auditors and the HR system's own look-ups carry a bearer token from the
 * config's `api.tokens`; each token names a subject (who is acting: every command is attributed
 * to it in the audit) and one role:
 *
 * | role | may |
 * | --- | --- |
 * | `hr-system` | look up its own deliveries (`GET /v1/hr/events/{webhookId}`); nothing else |
 * | `manager` | read, hold and release the offboardings of the employee ids in its `reports` only |
 * | `security` | everything: read, hold, release, expedite, cancel, retry, skip, audit verify, evidence |
 * | `auditor` | read, audit verify, evidence; no commands |
 *
 * HR deliveries themselves (`POST /v1/hr/*`) are authenticated by their signature, not a token.
 *
 * Tokens are compared in constant time: the presented token and every configured one are hashed
 * (SHA-256, so lengths are equal) and compared with `timingSafeEqual`, all of them, every time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';

export * from '../../model/api-config.js';
import type { ApiConfig, Role } from '../../model/api-config.js';
import { employeeIdSchema } from '../../model/request.js';

export interface Principal {
  subject: string;
  role: Role;
  reports: ReadonlySet<string>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Errors are JSON `{ error, detail }` everywhere. */
export function replyError(
  reply: FastifyReply,
  status: number,
  error: string,
  detail: string,
  extra: Record<string, unknown> = {},
) {
  return reply
    .code(status)
    .type('application/json')
    .send({ error, detail, ...extra });
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

export function createAuthenticator(tokens: ApiConfig['tokens']) {
  const known = tokens.map((entry) => ({
    hash: digest(entry.token),
    principal: { subject: entry.subject, role: entry.role, reports: new Set(entry.reports ?? []) } satisfies Principal,
  }));
  return {
    /** The principal for an `Authorization: Bearer …` header, or null. */
    authenticate(header: string | undefined): Principal | null {
      const match = /^Bearer ([\x21-\x7e]{1,1000})$/i.exec(header?.trim() ?? '');
      if (!match) return null;
      const presented = digest(match[1]!);
      let found: Principal | null = null;
      // No early exit: the time taken does not depend on which entry (if any) matched.
      for (const entry of known) if (timingSafeEqual(entry.hash, presented)) found = entry.principal;
      return found;
    },
  };
}
export type Authenticator = ReturnType<typeof createAuthenticator>;

export interface AccessPolicy {
  roles: readonly Role[];
  /** A manager passes only for the employee id in the route's `employeeId` parameter when it is one of their reports. */
  managerReportsOnly?: boolean;
}

/** A preHandler: 401 without a valid token, 403 outside the policy. */
export function guard(auth: Authenticator, policy: AccessPolicy): preHandlerAsyncHookHandler {
  return async function (request: FastifyRequest, reply: FastifyReply) {
    const principal = auth.authenticate(request.headers.authorization);
    if (!principal) {
      const presented = request.headers.authorization !== undefined;
      reply.header(
        'WWW-Authenticate',
        presented ? 'Bearer realm="offboard", error="invalid_token"' : 'Bearer realm="offboard"',
      );
      return replyError(
        reply,
        401,
        'unauthorized',
        presented ? 'the bearer token is not valid' : 'send Authorization: Bearer <token>',
      );
    }
    request.principal = principal;
    if (!policy.roles.includes(principal.role)) {
      return replyError(
        reply,
        403,
        'forbidden',
        `the ${principal.role} role may not ${request.method} ${request.routeOptions.url}`,
      );
    }
    if (principal.role === 'manager' && policy.managerReportsOnly) {
      // The id as the route's schema will read it (case-folded by the employee-id rule).
      const param = employeeIdSchema.safeParse((request.params as { employeeId?: string }).employeeId);
      if (!param.success || !principal.reports.has(param.data))
        return replyError(reply, 403, 'forbidden', 'this person is not one of your reports');
    }
  };
}
