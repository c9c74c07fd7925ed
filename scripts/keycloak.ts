/**
 * A local Keycloak (the Quarkus distribution scripts/toolchain.sh installs) in development mode on
 * free 127.0.0.1 ports, for the tests (one server per test run, a realm per test) and for
 * `npm start -- --with-keycloak` (a realm seeded from the sample organisation, sandbox/keycloak.ts).
 *
 * The build options here (an in-memory database, health checks) must match the ones the
 * toolchain's install-time start used, or Keycloak rebuilds its server image on every start (and
 * writes into the shared cache directory while doing so).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, readToolchain } from './services.js';

export interface KeycloakInstance {
  /** The server's base URL (no trailing slash): realms at `${url}/realms/<name>`. */
  url: string;
  /** The master realm's bootstrap administrator, for set-up only (offboard uses a service account). */
  adminUsername: string;
  adminPassword: string;
  /** How long the server took from spawn to answering its master realm's OIDC discovery. */
  startedInMs: number;
  stop(): Promise<void>;
}

/** Keycloak's own build options; the toolchain's install-time start uses the same. */
const BUILD_OPTIONS = ['--db=dev-mem', '--health-enabled=true'];

/** Why Keycloak cannot run here (the toolchain found no Java 21+), or undefined when it can. */
export function keycloakMissing(): string | undefined {
  const tools = readToolchain() as ReturnType<typeof readToolchain> & {
    keycloakHome?: string;
    keycloakJavaHome?: string;
  };
  return tools.keycloakHome
    ? undefined
    : `Keycloak is not installed: it needs Java 21+ at KEYCLOAK_JAVA_HOME (${tools.keycloakJavaHome ?? 'unset'}); then run bash scripts/toolchain.sh test`;
}

function keycloakHome(): { home: string; javaHome: string } {
  const tools = readToolchain() as ReturnType<typeof readToolchain> & {
    keycloakHome?: string;
    keycloakJavaHome?: string;
  };
  if (!tools.keycloakHome)
    throw new Error(
      'Keycloak is not installed: run `bash scripts/toolchain.sh test` (or `OFFBOARD_WITH_KEYCLOAK=1 bash scripts/toolchain.sh start`)',
    );
  return { home: tools.keycloakHome, javaHome: tools.keycloakJavaHome ?? '/usr/lib/jvm/temurin-25-jdk-amd64' };
}

async function discoveryAnswers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/realms/master/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(5_000),
    });
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Starts Keycloak and waits until the master realm's OIDC discovery answers (the admin API and
 * token endpoint are up then). The limit is generous: 33 s was measured under load, a busy CI
 * runner can take longer, and nothing else signals readiness reliably.
 */
export async function startKeycloak(
  options: { port?: number; adminUsername?: string; adminPassword?: string; timeoutMs?: number } = {},
): Promise<KeycloakInstance> {
  const { home, javaHome } = keycloakHome();
  const port = options.port ?? (await freePort());
  // The management interface (health, metrics) has a port of its own; 9000 by default would
  // clash between two servers on one machine.
  const managementPort = await freePort();
  const adminUsername = options.adminUsername ?? 'sandbox-admin';
  const adminPassword = options.adminPassword ?? 'sandbox-admin-password';
  const timeoutMs = options.timeoutMs ?? 180_000;
  const dir = mkdtempSync(join(tmpdir(), 'offboard-keycloak-'));
  const logPath = join(dir, 'keycloak.log');
  const log = openSync(logPath, 'a');
  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  // kc.sh runs java as its child rather than exec'ing it: the server gets a process group of its
  // own, so stopping it reaches the JVM too.
  const child: ChildProcess = spawn(
    join(home, 'bin', 'kc.sh'),
    [
      'start-dev',
      ...BUILD_OPTIONS,
      '--http-host=127.0.0.1',
      `--http-port=${port}`,
      `--http-management-port=${managementPort}`,
      '--hostname-strict=false',
    ],
    {
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        JAVA_HOME: javaHome,
        KC_BOOTSTRAP_ADMIN_USERNAME: adminUsername,
        KC_BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
        // Transaction logs go to this server's own directory, never into the shared installation.
        JAVA_OPTS_APPEND: `-Dquarkus.transaction-manager.object-store.directory=${join(dir, 'transaction-logs')}`,
      },
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 20_000);
      signalGroup(child, 'SIGTERM');
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = started + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      const output = readFileSync(logPath, 'utf8').slice(-4_000);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`Keycloak exited with code ${child.exitCode} before it answered on ${url}:\n${output}`);
    }
    if (await discoveryAnswers(url)) break;
    if (Date.now() > deadline) {
      const output = readFileSync(logPath, 'utf8').slice(-4_000);
      await stop();
      throw new Error(`Keycloak did not answer on ${url} within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { url, adminUsername, adminPassword, startedInMs: Date.now() - started, stop };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals) {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // Already gone.
  }
}
