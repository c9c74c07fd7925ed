/**
 * The GitHub stand-in (sandbox/github.ts) against GitHub's own published OpenAPI description
 * (`@octokit/openapi`, the GitHub Enterprise Cloud `ghec` description, which also documents the
 * SAML SSO endpoints): the connector is run through discovery, every action and check(), and every
 * answer the stand-in gives it is validated against the response schema the description gives
 * for that operation and status. A stand-in answer GitHub would not give fails here, and so does a
 * connector that starts calling an endpoint this file does not list.
 *
 * The description is OpenAPI 3.0: `nullable` is turned into JSON Schema's `null` type (and into
 * the `enum` it sits beside), and `$ref`s point into the description's own components, resolved
 * by ajv; `example`s and `x-` extensions are dropped as annotations.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { createGithubConnector, githubSystemSchema } from '../activities/connectors/github.js';
import type { Connector } from '../activities/connectors/types.js';
import type { Action } from '../model/plan.js';
import {
  GITHUB_SANDBOX_APP,
  GITHUB_SANDBOX_ORG,
  GITHUB_SANDBOX_TOKEN,
  githubLoginFor,
  sampleGithubLogins,
  startGithubSandbox,
  type GithubExchange,
  type GithubSandbox,
} from '../sandbox/github.js';
import { samplePerson } from '../sandbox/org.js';

/** Every endpoint the GitHub connector (and @octokit/auth-app for it) calls, as the description names it. */
const CONNECTOR_ENDPOINTS = [
  'POST /app/installations/{installation_id}/access_tokens',
  'GET /orgs/{org}',
  'GET /orgs/{org}/memberships/{username}',
  'PUT /orgs/{org}/memberships/{username}',
  'DELETE /orgs/{org}/memberships/{username}',
  'GET /orgs/{org}/invitations',
  'DELETE /orgs/{org}/invitations/{invitation_id}',
  'GET /orgs/{org}/teams',
  'GET /orgs/{org}/teams/{team_slug}/memberships/{username}',
  'DELETE /orgs/{org}/teams/{team_slug}/memberships/{username}',
  'GET /orgs/{org}/outside_collaborators',
  'GET /orgs/{org}/repos',
  'GET /repos/{owner}/{repo}/collaborators/{username}',
  'DELETE /repos/{owner}/{repo}/collaborators/{username}',
  'GET /repos/{owner}/{repo}/invitations',
  'DELETE /repos/{owner}/{repo}/invitations/{invitation_id}',
  'GET /orgs/{org}/personal-access-tokens',
  'POST /orgs/{org}/personal-access-tokens',
  'GET /orgs/{org}/personal-access-token-requests',
  'POST /orgs/{org}/personal-access-token-requests/{pat_request_id}',
  'GET /orgs/{org}/credential-authorizations',
  'DELETE /orgs/{org}/credential-authorizations/{credential_id}',
].sort();

/**
 * Error answers GitHub gives though the description does not list the status for the operation
 * (a 404 for a repository or invitation that does not exist): checked against `basic-error`, the
 * body GitHub sends with every error. Any other undocumented status fails the test.
 */
const UNDOCUMENTED_ERRORS = new Set([
  'GET /repos/{owner}/{repo}/invitations 404',
  'DELETE /repos/{owner}/{repo}/invitations/{invitation_id} 404',
  'GET /orgs/{org}/credential-authorizations 404',
]);

const SPEC_ID = 'https://offboard.test/ghec.json';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An OpenAPI 3.0 schema object as JSON Schema: `nullable` made a type, refs made absolute. */
function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'examples' || key === 'nullable' || key.startsWith('x-')) continue;
    if (key === '$ref' && typeof value === 'string') out.$ref = value.startsWith('#/') ? `${SPEC_ID}${value}` : value;
    // Property names are names, not keywords: only their schemas are converted.
    else if ((key === 'properties' || key === 'patternProperties') && isObject(value))
      out[key] = Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, toJsonSchema(schema)]));
    else out[key] = toJsonSchema(value);
  }
  if (node.nullable !== true) return out;
  if (typeof out.type === 'string') {
    out.type = [out.type, 'null'];
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
    return out;
  }
  // nullable beside allOf/anyOf/oneOf or a $ref: null, or what the rest says.
  return { anyOf: [out, { type: 'null' }] };
}

function collectFormats(node: Json, into: Set<string>): Set<string> {
  if (Array.isArray(node)) node.forEach((n) => collectFormats(n, into));
  else if (isObject(node)) {
    if (typeof node.format === 'string') into.add(node.format);
    Object.values(node).forEach((n) => collectFormats(n, into));
  }
  return into;
}

interface Description {
  paths: Record<string, Record<string, { responses: Record<string, JsonObject> }>>;
  components: { schemas: JsonObject; responses: Record<string, JsonObject> };
}

describe('GitHub stand-in against the published OpenAPI description (@octokit/openapi, ghec)', () => {
  let description: Description;
  let ajv: Ajv;
  let sandbox: GithubSandbox;
  const exchanges: GithubExchange[] = [];
  const validators = new Map<string, ValidateFunction>();

  before(async function () {
    this.timeout(60_000);
    const require = createRequire(import.meta.url);
    const file = require.resolve('@octokit/openapi/generated/ghec.json');
    description = JSON.parse(await readFile(file, 'utf8')) as Description;
    const schemas = toJsonSchema(description.components.schemas);
    ajv = new Ajv({ strict: false, allErrors: true });
    // ajv-formats is CommonJS: under ESM its plugin is the module's `default` export.
    const addFormats = addFormatsModule.default;
    addFormats(ajv);
    // Formats JSON Schema does not define (int64, repo.nwo, …) are annotations here, as in OpenAPI.
    for (const format of collectFormats(schemas, new Set())) if (!ajv.formats[format]) ajv.addFormat(format, true);
    ajv.addSchema({ $id: SPEC_ID, components: { schemas } });
    sandbox = await startGithubSandbox();
    sandbox.onAnswer((exchange) => exchanges.push(exchange));
  });
  after(async () => {
    await sandbox?.stop();
  });

  /** The operation's response for a status, following a `$ref` into components.responses. */
  function documentedResponse(route: string, status: number): JsonObject | undefined {
    const [method, path] = route.split(' ') as [string, string];
    const operation = description.paths[path]?.[method.toLowerCase()];
    assert.ok(operation, `the description has no operation ${route}`);
    let response = operation.responses[String(status)];
    const ref = response?.$ref;
    if (typeof ref === 'string') response = description.components.responses[ref.split('/').pop()!];
    return response;
  }

  function validatorFor(key: string, schema: Json): ValidateFunction {
    let validate = validators.get(key);
    if (!validate) {
      validate = ajv.compile(toJsonSchema(schema) as object);
      validators.set(key, validate);
    }
    return validate;
  }

  /** What is wrong with one answer, or nothing. */
  function problemsWith({ route, status, body }: GithubExchange): string | undefined {
    const response = documentedResponse(route, status);
    const content = response?.content;
    const jsonSchema =
      isObject(content) && isObject(content['application/json']) ? content['application/json'].schema : undefined;
    if (!response) {
      if (status < 400) return `${route} answered ${status}, which the description does not document`;
      if (!UNDOCUMENTED_ERRORS.has(`${route} ${status}`))
        return `${route} answered ${status}, which the description does not document (and it is not a known GitHub answer listed here)`;
    }
    if (jsonSchema === undefined) {
      if (status < 400) return body === undefined ? undefined : `${route} ${status} has no body in the description`;
      // An error without a documented body: GitHub's basic-error.
      const validate = validatorFor('basic-error', { $ref: '#/components/schemas/basic-error' });
      return validate(body) ? undefined : `${route} ${status}: ${ajv.errorsText(validate.errors)}`;
    }
    const validate = validatorFor(`${route} ${status}`, jsonSchema);
    if (validate(body)) return undefined;
    return `${route} ${status}: ${ajv.errorsText(validate.errors, { dataVar: 'body' })}`;
  }

  const connector = (overrides: Record<string, unknown> = {}): Connector =>
    createGithubConnector(
      'github',
      githubSystemSchema.parse({
        type: 'github',
        baseUrl: sandbox.url,
        token: GITHUB_SANDBOX_TOKEN,
        org: GITHUB_SANDBOX_ORG,
        logins: sampleGithubLogins(),
        ...overrides,
      }),
    );
  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'github',
    kind,
    accountId,
    target,
  });
  const who = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });

  it('every answer the connector gets, for every endpoint it calls, matches the response schema GitHub documents', async function () {
    this.timeout(60_000);
    const github = connector();
    await github.check!();
    // A GitHub App: @octokit/auth-app exchanges its JWT for an installation token first.
    const app = connector({
      token: undefined,
      app: {
        appId: GITHUB_SANDBOX_APP.appId,
        installationId: GITHUB_SANDBOX_APP.installationId,
        privateKey: sandbox.appPrivateKey,
      },
    });
    await app.discover(who('E1002'));
    // An owner: demoted, taken off a team, then offboarded with everything discovery finds.
    const owner = githubLoginFor(samplePerson('E1001'));
    await github.apply(action('remove_entitlement', owner, { id: 'org-role:admin', kind: 'org_role' }), who('E1001'));
    await github.apply(action('remove_entitlement', owner, { id: 'team:payments', kind: 'team' }), who('E1001'));
    for (const employeeId of ['E1001', 'E1005', 'E1037', 'E1038', 'E1039']) {
      const found = await github.discover(who(employeeId));
      const accountId = found.account!.id;
      for (const target of found.entitlements.filter((e) => e.kind !== 'team' || e.id !== 'team:security'))
        await github.apply(action('remove_entitlement', accountId, target), who(employeeId));
      await github.apply(action('disable_login', accountId), who(employeeId));
      await github.apply(action('revoke_tokens', accountId), who(employeeId));
    }
    // Refusals GitHub documents: a team synchronized with an IdP (403), someone nobody invited (404).
    await assert.rejects(
      github.apply(action('remove_entitlement', 'keeper', { id: 'team:security', kind: 'team' }), who('E1000')),
    );
    assert.equal(
      (await connector({ logins: { E5555: 'nobody-here' } }).discover({ employeeId: 'E5555' })).account,
      null,
    );

    const routes = [...new Set(exchanges.map((e) => e.route))].sort();
    assert.deepEqual(routes, CONNECTOR_ENDPOINTS, 'the connector called exactly the endpoints listed here');
    assert.ok(exchanges.length > 50, `${exchanges.length} answers`);
    const problems = exchanges.map(problemsWith).filter((p): p is string => p !== undefined);
    assert.deepEqual([...new Set(problems)], []);
    // Non-trivial: each endpoint was checked with a body or a documented empty answer, errors included.
    const statuses = new Set(exchanges.map((e) => `${e.route} ${e.status}`));
    for (const expected of [
      'GET /orgs/{org}/memberships/{username} 404',
      'GET /orgs/{org}/teams/{team_slug}/memberships/{username} 404',
      'DELETE /orgs/{org}/teams/{team_slug}/memberships/{username} 403',
      'DELETE /orgs/{org}/invitations/{invitation_id} 204',
      'POST /orgs/{org}/personal-access-token-requests/{pat_request_id} 204',
      'POST /orgs/{org}/personal-access-tokens 202',
    ])
      assert.ok(statuses.has(expected), `${expected} was exercised`);
  });

  it('the schemas are strict enough to fail an answer GitHub would not give', () => {
    const invitation = exchanges.find((e) => e.route === 'GET /orgs/{org}/invitations' && e.status === 200);
    assert.ok(invitation && Array.isArray(invitation.body) && invitation.body.length > 0, 'an invitation was listed');
    const [first] = invitation.body as Record<string, unknown>[];
    assert.equal(problemsWith(invitation), undefined);
    const withoutLogin = { ...invitation, body: [{ ...first, login: undefined }] };
    assert.match(problemsWith(withoutLogin) ?? '', /must have required property 'login'/);
    const numericEmail = { ...invitation, body: [{ ...first, email: 42 }] };
    assert.match(problemsWith(numericEmail) ?? '', /email must be string,null/);
    assert.equal(problemsWith({ ...invitation, body: [{ ...first, login: null }] }), undefined, 'login may be null');
    // Through a $ref: the inviter is a simple-user, which must have an avatar_url.
    const inviter = { ...(first!.inviter as object), avatar_url: undefined };
    assert.match(
      problemsWith({ ...invitation, body: [{ ...first, inviter }] }) ?? '',
      /inviter must have required property 'avatar_url'/,
    );
    assert.match(
      problemsWith({ route: 'GET /orgs/{org}/invitations', status: 201, body: [] }) ?? '',
      /does not document/,
    );
  });
});
