/**
 * Every SaaS stand-in at once, with the config that points offboard's connectors at them: what
 * `npm start` runs by default, and what the end-to-end tests offboard against. Tokens are the
 * stand-ins' own, handed to the worker as environment variables like any real secret.
 */
import type { ConfigInput } from '../workers/config.js';
import { ENTRA_SANDBOX_CLIENTS, startEntraSandbox } from './entra.js';
import { GITHUB_SANDBOX_APP, GITHUB_SANDBOX_ORG, sampleGithubLogins, startGithubSandbox } from './github.js';
import { GOOGLE_SANDBOX_ADMIN, startGoogleWorkspaceSandbox } from './google-workspace.js';
import { SANDBOX_OKTA_SERVICE_APP, startOktaSandbox } from './okta.js';
import {
  SANDBOX_SALESFORCE_CLIENT_ID,
  SANDBOX_SALESFORCE_CLIENT_SECRET,
  startSalesforceSandbox,
} from './salesforce.js';
import { SCIM_DEFAULT_TOKEN, startScimSandbox } from './scim.js';
import { SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_TOKENS, startSlackSandbox } from './slack.js';
import { startSsfReceiver, type SsfReceiver } from './ssf-receiver.js';

/** What the sandbox Shared Signals receiver answers to as `aud`. */
export const SSF_SANDBOX_AUDIENCE = 'https://partner-app.example.org';

export interface SandboxPorts {
  github?: number;
  slack?: number;
  salesforce?: number;
  scim?: number;
  okta?: number;
  entra?: number;
  google?: number;
}

export interface SandboxOptions {
  /** The transmitter's issuer (the local API): a Shared Signals receiver that trusts it is started too. */
  sharedSignalsIssuer?: string;
}

export async function startSaasSandboxes(ports: SandboxPorts = {}, options: SandboxOptions = {}) {
  const [github, slack, salesforce, wiki, okta, entra, google] = await Promise.all([
    startGithubSandbox({ port: ports.github }),
    startSlackSandbox({ port: ports.slack }),
    startSalesforceSandbox({ port: ports.salesforce }),
    startScimSandbox({ port: ports.scim }),
    startOktaSandbox({ port: ports.okta }),
    startEntraSandbox({ port: ports.entra, awkwardCases: false }),
    startGoogleWorkspaceSandbox({ port: ports.google }),
  ]);
  const systems: NonNullable<ConfigInput['systems']> = {
    // As a GitHub App, the production shape: installation tokens are minted and renewed by the client.
    github: {
      type: 'github',
      baseUrl: github.url,
      org: GITHUB_SANDBOX_ORG,
      logins: sampleGithubLogins(),
      app: {
        appId: GITHUB_SANDBOX_APP.appId,
        installationId: GITHUB_SANDBOX_APP.installationId,
        privateKey: { env: 'OFFBOARD_SANDBOX_GITHUB_APP_KEY' },
      },
    },
    slack: {
      type: 'slack',
      apiUrl: slack.apiUrl,
      token: { env: 'OFFBOARD_SANDBOX_SLACK_TOKEN' },
      teamId: SLACK_SANDBOX_TEAM_ID,
    },
    // OAuth client credentials of a Connected App, the production shape: sessions renewed on expiry.
    salesforce: {
      type: 'salesforce',
      instanceUrl: salesforce.url,
      clientCredentials: {
        clientId: SANDBOX_SALESFORCE_CLIENT_ID,
        clientSecret: { env: 'OFFBOARD_SANDBOX_SALESFORCE_CLIENT_SECRET' },
      },
    },
    // A SCIM 2.0 app (a company wiki, say): any number of these can be configured.
    wiki: {
      type: 'scim',
      baseUrl: wiki.url,
      bearerToken: { env: 'OFFBOARD_SANDBOX_SCIM_TOKEN' },
      matchBy: 'externalId',
    },
    // The identity providers, where most sessions live: a company has one or two; the sandbox has
    // each, so every connector can be tried. Okta as an API service app (private_key_jwt).
    okta: {
      type: 'okta',
      orgUrl: okta.url,
      oauth: { clientId: SANDBOX_OKTA_SERVICE_APP, privateKey: { env: 'OFFBOARD_SANDBOX_OKTA_SERVICE_KEY' } },
    },
    // Entra ID only speaks HTTPS: the stand-in's certificate is made at start and trusted here.
    entra: {
      type: 'entra',
      tenantId: entra.tenantId,
      clientId: ENTRA_SANDBOX_CLIENTS.offboard.clientId,
      clientSecret: { env: 'OFFBOARD_SANDBOX_ENTRA_CLIENT_SECRET' },
      graphBaseUrl: entra.graphBaseUrl,
      authorityHost: entra.authorityHost,
      caCertificates: entra.caCertificate,
    },
    // Google Workspace as a service account with domain-wide delegation, acting as an admin.
    workspace: {
      type: 'google_workspace',
      adminSubject: GOOGLE_SANDBOX_ADMIN,
      serviceAccountKey: { env: 'OFFBOARD_SANDBOX_GOOGLE_SERVICE_ACCOUNT_KEY' },
      rootUrl: google.url,
      tokenUrl: google.tokenUrl,
    },
  };
  // An app that takes Shared Signals (SSF push): it hears of each offboarding with no connector of its own.
  let partnerApp: SsfReceiver | undefined;
  if (options.sharedSignalsIssuer) {
    partnerApp = await startSsfReceiver({ issuer: options.sharedSignalsIssuer, audience: SSF_SANDBOX_AUDIENCE });
    systems['partner-app'] = { type: 'ssf', endpoint: partnerApp.endpoint, audience: SSF_SANDBOX_AUDIENCE };
  }
  const notifications: ConfigInput['notifications'] = {
    slack: { token: { env: 'OFFBOARD_SANDBOX_SLACK_BOT_TOKEN' }, channel: '#offboarding', apiUrl: slack.apiUrl },
  };
  const env: Record<string, string> = {
    OFFBOARD_SANDBOX_GITHUB_APP_KEY: github.appPrivateKey,
    OFFBOARD_SANDBOX_SLACK_TOKEN: SLACK_SANDBOX_TOKENS.orgAdmin,
    OFFBOARD_SANDBOX_SLACK_BOT_TOKEN: SLACK_SANDBOX_TOKENS.bot,
    OFFBOARD_SANDBOX_SALESFORCE_CLIENT_SECRET: SANDBOX_SALESFORCE_CLIENT_SECRET,
    OFFBOARD_SANDBOX_SCIM_TOKEN: SCIM_DEFAULT_TOKEN,
    OFFBOARD_SANDBOX_OKTA_SERVICE_KEY: okta.servicePrivateKey,
    OFFBOARD_SANDBOX_ENTRA_CLIENT_SECRET: ENTRA_SANDBOX_CLIENTS.offboard.clientSecret,
    OFFBOARD_SANDBOX_GOOGLE_SERVICE_ACCOUNT_KEY: google.serviceAccountKey,
  };
  return {
    servers: { github, slack, salesforce, wiki, okta, entra, workspace: google },
    /** The Shared Signals receiver, when an issuer was given. */
    ssfReceiver: partnerApp,
    systems,
    notifications,
    env,
    async stop() {
      await Promise.all(
        [github, slack, salesforce, wiki, okta, entra, google, partnerApp].map((server) => server?.stop()),
      );
    },
  };
}
export type SaasSandboxes = Awaited<ReturnType<typeof startSaasSandboxes>>;
