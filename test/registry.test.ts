/**
 * The connector registry: every descriptor marks its secrets (so the config file must name them as
 * `{ env: NAME }` and logs can hide them), config parsing knows exactly the registered types, and
 * the worker builds each system through its type's descriptor.
 */
import assert from 'node:assert/strict';
import { z } from 'zod';
import {
  connectorRegistry,
  configSchemaWithSecrets,
  redactSecrets,
  systemTypes,
} from '../activities/connectors/registry.js';
import { ConfigError, parseConfig } from '../workers/config.js';
import { createConnectors } from '../workers/create-worker.js';

/** The field at a dotted path, through optional and default wrappers; undefined when absent. */
function fieldAt(schema: z.ZodType, path: string[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  for (const key of path) {
    while (current instanceof z.ZodOptional || current instanceof z.ZodDefault) current = current.unwrap() as z.ZodType;
    if (!(current instanceof z.ZodObject)) return undefined;
    current = current.shape[key] as z.ZodType | undefined;
  }
  return current;
}

/** Every string field's dotted path, descending into nested objects. */
function stringFields(schema: z.ZodType, prefix: string[] = []): string[] {
  let inner = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault) inner = inner.unwrap() as z.ZodType;
  if (inner instanceof z.ZodString) return [prefix.join('.')];
  if (!(inner instanceof z.ZodObject)) return [];
  return Object.entries(inner.shape).flatMap(([key, field]) => stringFields(field as z.ZodType, [...prefix, key]));
}

const LOOKS_SECRET = /password|secret|token$|privatekey|bearer/i;

describe('connector registry', () => {
  for (const descriptor of connectorRegistry) {
    it(`${descriptor.type}: its schema has the type literal and marks every secret field, and the loader wraps each one`, () => {
      assert.deepEqual([...(fieldAt(descriptor.configSchema, ['type']) as z.ZodLiteral).values], [descriptor.type]);
      for (const path of descriptor.secretFields) {
        let field = fieldAt(descriptor.configSchema, path.split('.'));
        if (field instanceof z.ZodOptional) field = field.unwrap() as z.ZodType;
        assert.ok(field instanceof z.ZodString, `${descriptor.type}.${path} is a string field of the schema`);
      }
      const unmarked = stringFields(descriptor.configSchema).filter(
        (path) =>
          LOOKS_SECRET.test(path.split('.').pop()!) && !(descriptor.secretFields as readonly string[]).includes(path),
      );
      assert.deepEqual(unmarked, [], `${descriptor.type}: fields that look secret but are not in secretFields`);

      const wrapped: z.ZodType[] = [];
      const schema = configSchemaWithSecrets(descriptor, (plain) => {
        const marker = z.string().pipe(plain);
        wrapped.push(marker);
        return marker;
      });
      assert.equal(wrapped.length, descriptor.secretFields.length);
      for (const path of descriptor.secretFields) {
        let field = fieldAt(schema, path.split('.'));
        if (field instanceof z.ZodOptional) field = field.unwrap() as z.ZodType;
        assert.ok(field && wrapped.includes(field), `${descriptor.type}.${path} is wrapped as a secret`);
      }
    });
  }

  it('config parsing refuses an unknown or missing type, listing the known ones', () => {
    const problem = (system: unknown) => {
      try {
        parseConfig({ systems: { crm: system } }, 'offboard.config.yaml', {});
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
      assert.fail('expected the config to be refused');
    };
    const known =
      'ldap, postgres, manual, scim, slack, github, salesforce, ssf, keycloak, entra, google_workspace, okta';
    assert.equal(systemTypes.join(', '), known);
    assert.match(
      problem({ type: 'sap-hr', url: 'https://x' }),
      new RegExp(`systems\\.crm\\.type: unknown system type "sap-hr": one of ${known}`),
    );
    assert.match(
      problem({ app: 'CRM' }),
      new RegExp(`systems\\.crm\\.type: a system type is required: one of ${known}`),
    );
  });

  it('a secret given as a literal is refused for every marked field, and resolved from the environment otherwise', () => {
    const github = {
      type: 'github',
      org: 'example',
      app: { appId: 1, installationId: 2, privateKey: '-----BEGIN PRIVATE KEY-----' },
    };
    assert.throws(
      () => parseConfig({ systems: { gh: github } }, 'x', {}),
      /systems\.gh\.app\.privateKey: write secrets as \{ env: VARIABLE_NAME \}/,
    );
    const salesforce = {
      type: 'salesforce',
      instanceUrl: 'https://example.my.salesforce.com',
      clientCredentials: { clientId: 'id', clientSecret: { env: 'SF_SECRET' } },
    };
    const config = parseConfig({ systems: { crm: salesforce } }, 'x', { SF_SECRET: 's3cret' });
    const crm = config.systems.crm;
    assert.equal(crm?.type === 'salesforce' && crm.clientCredentials?.clientSecret, 's3cret');
    assert.doesNotMatch(JSON.stringify(redactSecrets(crm!)), /s3cret/);
    assert.match(JSON.stringify(redactSecrets(crm!)), /"clientSecret":"\[redacted\]"/);
  });

  it('the log copy counts personal maps: GitHub logins by HR id are not written out', () => {
    const github = {
      type: 'github',
      org: 'example',
      token: { env: 'GH_TOKEN' },
      logins: { E1001: 'ada-lovelace', E1002: 'alan-turing' },
    };
    const gh = parseConfig({ systems: { gh: github } }, 'x', { GH_TOKEN: 'ghp_x' }).systems.gh!;
    const logged = JSON.stringify(redactSecrets(gh));
    assert.doesNotMatch(logged, /ada-lovelace|E1001|ghp_x/);
    assert.match(logged, /"logins":"\[2 entries\]"/);
  });

  it('the worker creates each configured system through its type', async () => {
    const config = parseConfig(
      {
        systems: {
          payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' },
          wiki: { type: 'scim', baseUrl: 'http://127.0.0.1:9/scim/v2', bearerToken: { env: 'SCIM' } },
        },
      },
      'x',
      { SCIM: 'token' },
    );
    const connectors = createConnectors(config);
    assert.deepEqual([...connectors.keys()], ['payroll', 'wiki']);
    assert.equal(connectors.get('payroll')!.system, 'payroll');
    await assert.rejects(
      connectors.get('payroll')!.apply(
        {
          id: 'revoke/payroll/disable_login',
          stage: 'revoke',
          system: 'payroll',
          kind: 'disable_login',
          accountId: 'manual:payroll',
        },
        { employeeId: 'E1' },
      ),
      /manual task for payroll-team/,
    );
    await Promise.all([...connectors.values()].map((connector) => connector.close()));
  });
});
