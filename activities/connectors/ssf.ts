/**
 * A Shared Signals receiver (OpenID SSF 1.0): any app that accepts Security Event Tokens by push
 * delivery (RFC 8935) hears that the person's access ended and acts on it itself, with no
 * connector of its own. Each receiver is its own system, so each delivery is an action with its
 * own retries, audit row and manual task. The transmitter (issuer, signing key) is shared by all
 * of them: the config's `sharedSignals`, published by the API (client/http/ssf.ts).
 *
 * Actions, each one signed SET (RFC 8417, SSF §4) POSTed to the receiver's endpoint:
 * - disable_login: RISC `account-disabled`;
 * - revoke_sessions: CAEP `session-revoked` (SSF 1.0 deprecates RISC's `sessions-revoked` for it);
 * - enable_login (a cancelled offboarding): RISC `account-enabled`;
 * - delete_account: RISC `account-purged`;
 * - an event the receiver does not take (`events:`), and every other action: not_applicable.
 *
 * The subject (`sub_id`, RFC 9493 / SSF §3) is the person's email (from HR or the directory), an
 * issuer and subject (`iss_sub`, the subject from a template), both as `aliases`, or a `complex`
 * subject (the user, and the tenant). Discovery cannot see into a receiver: it presumes the
 * account once the subject can be formed (a person with no email yet is "no account", so the
 * pipeline waits for the directories' email), and verification leaves receivers out.
 *
 * Idempotency: the `jti` is derived from the offboarding's workflow and run, the action and the
 * event, never drawn per attempt, so a retried delivery (a 503, or a 202 lost on the way back)
 * re-sends the same SET and a receiver that keeps the `jti`s it has seen recognises it. RFC 8935
 * has no "already received" answer, so the outcome is `done` whenever the receiver answered 202,
 * and never `already`.
 *
 * Answers (RFC 8935 §2.2-2.4): 202 is accepted; 400 with `{err, description}` is classified by
 * `err` (invalid_request, invalid_key, invalid_issuer, invalid_audience, authentication_failed,
 * access_denied) and not retried, with what to fix; 401/403/404/3xx likewise; 429 and 5xx and
 * network failures are retried, after `Retry-After` when given (§4: only recoverable errors are).
 */
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Action, Discovery } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import {
  SET_MEDIA_TYPE,
  SSF_EVENT_TYPES,
  SSF_VERIFICATION_EVENT,
  ssfEventNames,
  type SsfEventName,
} from '../../model/shared-signals.js';
import type { SetSigner } from '../../workers/ssf-signing-key.js';
import { defineConnector } from './descriptor.js';
import { retryAfterMs } from './scim.js';
import { ConnectorError, type ApplyContext, type ApplyResult, type Connector } from './types.js';

const TEMPLATE = /\{(employeeId|email|emailLocalPart)\}/g;

export const ssfSystemSchema = z.object({
  type: z.literal('ssf'),
  /** The receiver's push endpoint (SSF `endpoint_url`). */
  endpoint: z.url({ protocol: /^https?$/, error: "the receiver's push endpoint, an http(s):// URL" }),
  /** The SET's `aud`: how the receiver names itself (its client id or URL, as it told you). */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** The `Authorization` header value the receiver gave for its endpoint (SSF `authorization_header`): a secret. */
  authorization: z.string().min(1).optional(),
  subject: z
    .object({
      /**
       * `email`; `iss_sub` (issuer + subject); `aliases` (both, RFC 9493 §3.2.9); `complex` (SSF
       * §3.3: `user`, the iss_sub when `iss` is given, else the email, and `tenant` when given).
       */
      format: z.enum(['email', 'iss_sub', 'aliases', 'complex']).default('email'),
      /** The issuer of the person's identity as the receiver knows it (the company's identity provider). */
      iss: z.url().optional(),
      /** The person's subject at that issuer: `{employeeId}`, `{email}` and `{emailLocalPart}` are filled in. */
      sub: z.string().min(1).default('{employeeId}'),
      /** complex: the tenant's opaque id at the receiver. */
      tenant: z.string().min(1).optional(),
    })
    .strict()
    .prefault({}),
  /** The events the receiver takes; the others are not sent. */
  events: z
    .array(z.enum(ssfEventNames))
    .min(1)
    .default([...ssfEventNames]),
  /** The stream's id at the receiver, the subject of the verification event `check()` sends; default the system name. */
  streamId: z.string().min(1).optional(),
  timeoutMs: z.number().int().positive().default(15_000),
});
export type SsfSystemConfig = z.infer<typeof ssfSystemSchema>;
export type SsfSystemInput = z.input<typeof ssfSystemSchema>;

export const ssfConnector = defineConnector({
  type: 'ssf',
  configSchema: ssfSystemSchema,
  secretFields: ['authorization'],
  refine(config, ctx) {
    const { format, iss } = config.subject;
    if ((format === 'iss_sub' || format === 'aliases') && !iss)
      ctx.addIssue({ code: 'custom', path: ['subject', 'iss'], message: `subject.format ${format} needs subject.iss` });
  },
  capabilities: {
    actions: ['disable_login', 'revoke_sessions', 'enable_login', 'delete_account'],
    discover: false,
    verify: false,
    check: true,
  },
  create: (config, { system, sharedSignals }) => {
    if (!sharedSignals)
      throw new Error(
        `system ${system} (type ssf) needs the Shared Signals transmitter: the config's sharedSignals section`,
      );
    return createSsfConnector(system, config, sharedSignals);
  },
});

const EVENT_OF: Partial<Record<Action['kind'], SsfEventName>> = {
  disable_login: 'account-disabled',
  revoke_sessions: 'session-revoked',
  enable_login: 'account-enabled',
  delete_account: 'account-purged',
};

type SubjectIdentifier = Record<string, unknown> & { format: string };

/** The `sub_id` for the person, or undefined while an email it needs is not known. */
export function subjectIdentifier(config: SsfSystemConfig['subject'], subject: Subject): SubjectIdentifier | undefined {
  const email = subject.email?.toLowerCase();
  const byEmail = email ? { format: 'email', email } : undefined;
  let sub: string | undefined = config.sub;
  if (/\{email(LocalPart)?\}/.test(sub) && !email) sub = undefined;
  else
    sub = sub.replace(TEMPLATE, (_, name: string) =>
      name === 'employeeId' ? subject.employeeId : name === 'email' ? email! : email!.split('@')[0]!,
    );
  const byIssSub = config.iss && sub ? { format: 'iss_sub', iss: config.iss, sub } : undefined;
  switch (config.format) {
    case 'email':
      return byEmail;
    case 'iss_sub':
      return byIssSub;
    case 'aliases':
      return byEmail && byIssSub ? { format: 'aliases', identifiers: [byEmail, byIssSub] } : undefined;
    case 'complex': {
      const user = config.iss ? byIssSub : byEmail;
      if (!user) return undefined;
      return {
        format: 'complex',
        user,
        ...(config.tenant ? { tenant: { format: 'opaque', id: config.tenant } } : {}),
      };
    }
  }
}

/** Same offboarding run, action and event: same `jti`, on every attempt (128 bits, hex). */
export function deterministicJti(context: ApplyContext, actionId: string, eventType: string): string {
  return createHash('sha256')
    .update([context.offboardingId, context.runId, actionId, eventType].join('\n'))
    .digest('hex')
    .slice(0, 32);
}

/** RFC 8935 §2.4 error codes, with what the operator does about each (`this system`: its config entry). */
const ERR_ADVICE: Record<string, string> = {
  invalid_request:
    'the receiver could not parse the SET or does not accept its event or subject: check that subject.format and events are what the receiver supports',
  invalid_key:
    "the receiver does not accept the signing key: have it fetch the transmitter's JWKS again (jwks_uri in /.well-known/ssf-configuration), or give it the current public key",
  invalid_issuer:
    'the receiver does not accept the issuer: register sharedSignals.issuer with the receiver, or set it to the issuer the receiver was given',
  invalid_audience:
    'the receiver does not recognise the audience: set audience for this system to the value the receiver expects (its client id or URL)',
  authentication_failed:
    'the receiver could not authenticate offboard: set authorization for this system to the header value the receiver issued',
  access_denied:
    'the receiver refuses SETs from this transmitter: ask its owner to allow the issuer to deliver to this stream',
};

function adviceFor(status: number): string {
  if (status === 401)
    return 'the receiver refused the Authorization header: set authorization for this system to the value it issued';
  if (status === 403) return 'the receiver does not allow this transmitter: ask its owner to allow the issuer';
  if (status === 404) return 'no such endpoint: check endpoint against the push endpoint the receiver gave';
  if (status === 413) return 'the receiver refused the SET as too large';
  if (status === 415) return 'the receiver does not take application/secevent+jwt at this endpoint: check endpoint';
  if (status >= 300 && status < 400) return 'the endpoint redirects: configure the final URL as endpoint';
  if (status >= 200 && status < 300)
    return "RFC 8935 §2.2 acknowledges a SET with 202 Accepted only: check that endpoint is the receiver's push endpoint";
  return 'the receiver refused the SET';
}

interface ErrorBody {
  err?: string;
  description?: string;
}

function errorBody(text: string): ErrorBody {
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const pick = (key: string) => (typeof parsed[key] === 'string' ? (parsed[key] as string).slice(0, 200) : undefined);
    return { err: pick('err'), description: pick('description') };
  } catch {
    const excerpt = text.replace(/\s+/g, ' ').trim().slice(0, 200);
    return { description: excerpt || undefined };
  }
}

export function createSsfConnector(system: string, config: SsfSystemConfig, signer: SetSigner): Connector {
  const label = `SSF receiver (${system})`;
  const receiver = new URL(config.endpoint).origin;
  const accountId = `ssf:${system}`;

  /** POSTs one SET (RFC 8935 §2.1); resolves on 202, throws a classified ConnectorError otherwise. */
  async function push(set: string, doing: string): Promise<number> {
    const headers: Record<string, string> = { 'content-type': SET_MEDIA_TYPE, accept: 'application/json' };
    if (config.authorization) headers.authorization = config.authorization;
    let response: Response;
    let text: string;
    try {
      response = await fetch(config.endpoint, {
        method: 'POST',
        headers,
        body: set,
        redirect: 'manual',
        signal: AbortSignal.timeout(config.timeoutMs),
      });
      text = await response.text();
    } catch (err) {
      const reason =
        (err as Error).name === 'TimeoutError' ? `no answer within ${config.timeoutMs} ms` : (err as Error).message;
      // The receiver may have accepted it: the retry sends the same jti.
      throw new ConnectorError(`${label} ${doing}: ${reason} — retrying with the same SET`, true, 'ssf_unreachable');
    }
    if (response.status === 202) return 202;
    const body = errorBody(text);
    const what = [body.err, body.description].filter(Boolean).join(': ');
    const retryable = response.status === 429 || response.status >= 500;
    const advice = retryable
      ? 'the receiver is busy or failing: retrying with the same SET'
      : response.status === 400 && body.err
        ? (ERR_ADVICE[body.err] ?? 'the receiver refused the SET with an error code RFC 8935 does not define')
        : adviceFor(response.status);
    const named = advice.replaceAll('this system', `systems.${system}`);
    throw new ConnectorError(
      `${label} ${doing} failed: HTTP ${response.status}${what ? ` ${what}` : ''} — ${named}`,
      retryable,
      body.err ? `ssf_${body.err}` : `ssf_${response.status}`,
      retryable ? retryAfterMs(response.headers) : undefined,
    );
  }

  return {
    system,
    async discover(subject: Subject): Promise<Discovery> {
      const found = subjectIdentifier(config.subject, subject) !== undefined;
      return {
        system,
        account: found ? { id: accountId, disabled: false } : null,
        entitlements: [],
        credentials: [],
        unverifiable: true,
      };
    },

    async apply(action: Action, subject: Subject, context?: ApplyContext): Promise<ApplyResult> {
      const event = EVENT_OF[action.kind];
      if (!event)
        return { outcome: 'not_applicable', details: { reason: `no Shared Signals event for ${action.kind}` } };
      if (!config.events.includes(event))
        return { outcome: 'not_applicable', details: { reason: `the receiver does not take ${event}` } };
      if (!context)
        throw new ConnectorError(
          `${label}: no offboarding context to derive the SET's jti from`,
          false,
          'ssf_no_context',
        );
      const subId = subjectIdentifier(config.subject, subject);
      if (!subId)
        throw new ConnectorError(
          `${label}: no email is known for ${subject.employeeId}, and subject.format ${config.subject.format} needs one — send the email with the HR event, or use subject.format iss_sub`,
          false,
          'ssf_no_subject',
        );
      const eventType = SSF_EVENT_TYPES[event];
      const iat = Math.floor(context.firstScheduledAtMs / 1000);
      const jti = deterministicJti(context, action.id, eventType);
      const payload =
        event === 'session-revoked'
          ? {
              event_timestamp: iat,
              initiating_entity: 'policy',
              reason_admin: { en: "Offboarding: the organisation ended this person's access" },
            }
          : {};
      const set = await signer.sign({
        aud: config.audience,
        iat,
        jti,
        txn: context.runId,
        sub_id: subId,
        events: { [eventType]: payload },
      });
      const status = await push(set, `delivering ${event}`);
      return {
        outcome: 'done',
        details: { event, eventType, jti, txn: context.runId, receiver, status, subjectFormat: subId.format },
      };
    },

    /** SSF §8.1.4: a verification event proves delivery end to end, the receiver's signature check included. */
    async check() {
      const set = await signer.sign({
        aud: config.audience,
        iat: Math.floor(Date.now() / 1000),
        jti: randomUUID(),
        sub_id: { format: 'opaque', id: config.streamId ?? system },
        events: { [SSF_VERIFICATION_EVENT]: {} },
      });
      await push(set, 'delivering a verification event');
    },

    async close() {},
  };
}
