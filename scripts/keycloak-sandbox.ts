/**
 * `npm start -- --with-keycloak` (or OFFBOARD_WITH_KEYCLOAK=1): a local Keycloak with a realm
 * `example` seeded from the sample organisation, configured as the system `sso`. Off by default,
 * so the default start stays as fast as it was. Keycloak's database is in memory: like the SaaS
 * stand-ins, it starts afresh each time.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SAMPLE_PEOPLE } from '../sandbox/org.js';
import { addPerson, seedRealm } from '../sandbox/keycloak.js';
import { startKeycloak } from './keycloak.js';
import { projectRoot, readToolchain } from './services.js';

export const SANDBOX_KEYCLOAK_REALM = 'example';
const SECRET_ENV = 'OFFBOARD_SANDBOX_KEYCLOAK_SECRET';

export function keycloakWanted(argv: readonly string[] = process.argv, env = process.env): boolean {
  return argv.includes('--with-keycloak') || env.OFFBOARD_WITH_KEYCLOAK === '1';
}

export interface SandboxKeycloak {
  /** The `systems` entry (its secret as `{ env }`) and the environment that resolves it. */
  systems: Record<string, unknown>;
  env: Record<string, string>;
  line: string;
  stop(): Promise<void>;
}

export async function startSandboxKeycloak(port: number): Promise<SandboxKeycloak> {
  // `npm start -- --with-keycloak` reaches this script only: prestart did not install Keycloak.
  if (!(readToolchain() as { keycloakHome?: string }).keycloakHome) {
    const install = spawnSync('bash', [join(projectRoot, 'scripts', 'toolchain.sh'), 'start'], {
      env: { ...process.env, OFFBOARD_WITH_KEYCLOAK: '1' },
      stdio: 'inherit',
    });
    if (install.status !== 0) throw new Error('installing Keycloak failed (see the [toolchain] lines above)');
  }
  const keycloak = await startKeycloak({ port });
  try {
    const seeded = await seedRealm(keycloak, SANDBOX_KEYCLOAK_REALM);
    // A few at a time: Keycloak is still warming up, and the machine may be small.
    const queue = SAMPLE_PEOPLE.slice();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let person = queue.shift(); person; person = queue.shift()) await addPerson(seeded, person);
      }),
    );
    return {
      systems: {
        sso: {
          type: 'keycloak',
          url: keycloak.url,
          realm: SANDBOX_KEYCLOAK_REALM,
          clientId: seeded.clientId,
          clientSecret: { env: SECRET_ENV },
          findBy: 'attribute',
          attribute: 'employeeNumber',
        },
      },
      env: { [SECRET_ENV]: seeded.clientSecret },
      line: `${keycloak.url} (realm ${SANDBOX_KEYCLOAK_REALM}, sample organisation, in memory; admin console ${keycloak.url}/admin as ${keycloak.adminUsername}, password in README; started in ${Math.round(keycloak.startedInMs / 1000)} s)`,
      stop: () => keycloak.stop(),
    };
  } catch (err) {
    await keycloak.stop();
    throw err;
  }
}
