/**
 * docker-compose.yml is the production shape users run; no engine runs here, so Debian's
 * docker-compose checks the file itself.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { projectRoot } from '../scripts/services.js';

const run = (env: NodeJS.ProcessEnv) =>
  spawnSync('docker-compose', ['config'], {
    cwd: projectRoot,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env },
  });

describe('docker-compose.yml', () => {
  const secrets = {
    TEMPORAL_DB_PASSWORD: 't-secret',
    AUDIT_DB_PASSWORD: 'a-secret',
    LDAP_ADMIN_PASSWORD: 'l-secret',
    OFFBOARD_LDAP_PASSWORD: 'o-secret',
    OFFBOARD_PAYLOAD_KEYS: 'prod-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  };

  it('is valid and has the production services, wired together', () => {
    const result = run(secrets);
    assert.equal(result.status, 0, result.stderr);
    const config = parse(result.stdout) as {
      services: Record<string, { environment?: Record<string, string>; ports?: unknown[]; profiles?: string[] }>;
    };
    assert.deepEqual(Object.keys(config.services).sort(), [
      'audit-db',
      'keycloak',
      'ldap',
      'temporal',
      'temporal-db',
      'temporal-setup',
      'temporal-ui',
      'worker',
    ]);
    const worker = config.services.worker!.environment!;
    assert.equal(worker.TEMPORAL_ADDRESS, 'temporal:7233');
    assert.equal(worker.DATABASE_URL, 'postgres://offboard:a-secret@audit-db:5432/offboard');
    assert.equal(worker.OFFBOARD_CONFIG, '/etc/offboard/offboard.yaml');
    // Keycloak is there to try the connector: only `--profile keycloak` starts it.
    assert.deepEqual(config.services.keycloak!.profiles, ['keycloak']);
  });

  it('refuses to start without its secrets instead of using defaults', () => {
    const result = run({});
    assert.notEqual(result.status, 0);
    assert.match(
      result.stderr,
      /set (TEMPORAL_DB_PASSWORD|AUDIT_DB_PASSWORD|LDAP_ADMIN_PASSWORD|OFFBOARD_LDAP_PASSWORD|OFFBOARD_PAYLOAD_KEYS)/,
    );
  });
});
