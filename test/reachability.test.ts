/**
 * The start-up report: every configured system is reached once; one that cannot be reached is
 * named with the reason, and the others are unaffected.
 */
import assert from 'node:assert/strict';
import { parseConfig } from '../workers/config.js';
import { createConnectors } from '../workers/create-worker.js';
import { checkSystems } from '../workers/reachability.js';
import { startSlackSandbox, SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_TOKENS } from '../sandbox/slack.js';
import { startScimSandbox, SCIM_DEFAULT_TOKEN } from '../sandbox/scim.js';
import { freePort } from '../scripts/services.js';
import { sharedSlapd } from './helpers/environment.js';

describe('reachability report at start-up', () => {
  it('names each unreachable or misconfigured system with its reason and leaves the others alone', async () => {
    const slack = await startSlackSandbox();
    const wiki = await startScimSandbox();
    const closed = await freePort();
    const slapd = await sharedSlapd();
    const ldap = {
      type: 'ldap',
      url: slapd.url,
      bindDn: slapd.serviceDn,
      peopleBase: slapd.peopleBase,
      groupsBase: slapd.groupsBase,
    };
    try {
      const config = parseConfig(
        {
          systems: {
            slack: { type: 'slack', apiUrl: slack.apiUrl, token: { env: 'SLACK' }, teamId: SLACK_SANDBOX_TEAM_ID },
            wiki: { type: 'scim', baseUrl: wiki.url, bearerToken: { env: 'SCIM' } },
            'wiki-wrong-token': { type: 'scim', baseUrl: wiki.url, bearerToken: { env: 'WRONG' } },
            'crm-down': {
              type: 'scim',
              baseUrl: `http://127.0.0.1:${closed}/scim/v2`,
              bearerToken: { env: 'SCIM' },
              timeoutMs: 2_000,
            },
            payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' },
            directory: { ...ldap, bindPassword: { env: 'LDAP' } },
            'directory-wrong-password': { ...ldap, bindPassword: { env: 'WRONG' } },
          },
        },
        'test',
        {
          SLACK: SLACK_SANDBOX_TOKENS.orgAdmin,
          SCIM: SCIM_DEFAULT_TOKEN,
          WRONG: 'not-the-token',
          LDAP: slapd.servicePassword,
        },
      );
      const results = Object.fromEntries(
        (await checkSystems(createConnectors(config), 5_000)).map((r) => [r.system, r]),
      );
      assert.deepEqual(results.slack, { system: 'slack', ok: true, checked: true });
      assert.deepEqual(results.wiki, { system: 'wiki', ok: true, checked: true });
      assert.equal(results['wiki-wrong-token']!.ok, false);
      assert.match(results['wiki-wrong-token']!.problem!, /401/);
      assert.ok(!results['wiki-wrong-token']!.problem!.includes('not-the-token'), 'the token is never shown');
      assert.equal(results['crm-down']!.ok, false);
      assert.deepEqual(results.payroll, { system: 'payroll', ok: true, checked: false });
      assert.deepEqual(results.directory, { system: 'directory', ok: true, checked: true });
      assert.match(results['directory-wrong-password']!.problem!, /invalidCredentials: check the bind DN and password/);
      assert.ok(slack.state.calls.includes('auth.test'));
    } finally {
      await Promise.all([slack.stop(), wiki.stop()]);
    }
  });
});
