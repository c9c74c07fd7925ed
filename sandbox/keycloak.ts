/**
 * Seeds a realm in a real Keycloak (scripts/keycloak.ts) through the Admin REST API, as the master
 * realm's bootstrap administrator: the user profile declares employeeNumber (the HR id offboard
 * finds people by), a confidential client `offboard` whose service account holds the
 * realm-management roles the connector needs, a public client `sample-app` with direct access
 * grants (an application people sign in to, whose refresh and offline tokens the tests replay), and
 * the sample organisation's people (password `sandbox-user-password`), groups and a few roles.
 * Tests give each case a realm of its own; `npm start -- --with-keycloak` seeds one `example` realm.
 */
import KcAdminClient from '@keycloak/keycloak-admin-client';
import type { KeycloakInstance } from '../scripts/keycloak.js';
import { SAMPLE_GROUPS, type SamplePerson } from './org.js';

export const KEYCLOAK_OFFBOARD_CLIENT = 'offboard';
export const KEYCLOAK_APP_CLIENT = 'sample-app';
export const KEYCLOAK_USER_PASSWORD = 'sandbox-user-password';
/** An identity provider people can be linked to (it is never reached: links are made by the admin API). */
export const KEYCLOAK_IDP_ALIAS = 'corporate-saml';
/** What the connector's service account needs (README, activities/connectors/keycloak.ts). */
export const KEYCLOAK_SERVICE_ROLES = ['view-users', 'manage-users'];

export interface SeededRealm {
  realm: string;
  /** The offboard client's credentials (client credentials grant). */
  clientId: string;
  clientSecret: string;
  /** The admin client, authenticated to the master realm, for set-up and inspection. */
  admin: KcAdminClient;
}

export async function adminClient(keycloak: KeycloakInstance): Promise<KcAdminClient> {
  const admin = new KcAdminClient({ baseUrl: keycloak.url, realmName: 'master' });
  await admin.auth({
    grantType: 'password',
    clientId: 'admin-cli',
    username: keycloak.adminUsername,
    password: keycloak.adminPassword,
  });
  // The master realm's tokens live 60 s by default: too short for a test's set-up and inspection.
  const master = await admin.realms.findOne({ realm: 'master' });
  if ((master?.accessTokenLifespan ?? 0) < 3600) {
    await admin.realms.update({ realm: 'master' }, { accessTokenLifespan: 3600 });
    await admin.auth({
      grantType: 'password',
      clientId: 'admin-cli',
      username: keycloak.adminUsername,
      password: keycloak.adminPassword,
    });
  }
  return admin;
}

/**
 * A realm with the two clients and the sample groups and roles. `serviceRoles` narrows what the
 * offboard service account may do (the permission-error tests give it less).
 */
export async function seedRealm(
  keycloak: KeycloakInstance,
  realm: string,
  options: { serviceRoles?: string[] } = {},
): Promise<SeededRealm> {
  const admin = await adminClient(keycloak);
  await admin.realms.create({ realm, enabled: true });
  admin.setConfig({ realmName: realm });

  const profile = await admin.users.getProfile({ realm });
  profile.attributes = [
    ...(profile.attributes ?? []),
    {
      name: 'employeeNumber',
      displayName: 'Employee number',
      permissions: { view: ['admin'], edit: ['admin'] },
      multivalued: false,
    },
  ];
  await admin.users.updateProfile({ ...profile, realm });

  const { id: offboardId } = await admin.clients.create({
    clientId: KEYCLOAK_OFFBOARD_CLIENT,
    publicClient: false,
    serviceAccountsEnabled: true,
    standardFlowEnabled: false,
    directAccessGrantsEnabled: false,
  });
  const secret = await admin.clients.getClientSecret({ id: offboardId });
  const serviceUser = await admin.clients.getServiceAccountUser({ id: offboardId });
  const [management] = await admin.clients.find({ clientId: 'realm-management' });
  const wanted = options.serviceRoles ?? KEYCLOAK_SERVICE_ROLES;
  const roles = await Promise.all(
    wanted.map((name) => admin.clients.findRole({ id: management!.id!, roleName: name })),
  );
  if (roles.length)
    await admin.users.addClientRoleMappings({
      id: serviceUser.id!,
      clientUniqueId: management!.id!,
      roles: roles.map((role) => ({ id: role!.id!, name: role!.name! })),
    });

  const { id: appId } = await admin.clients.create({
    clientId: KEYCLOAK_APP_CLIENT,
    publicClient: true,
    directAccessGrantsEnabled: true,
    standardFlowEnabled: true,
    redirectUris: ['http://127.0.0.1/callback'],
  });
  await admin.clients.createRole({ id: appId, name: 'approver' });
  await admin.roles.create({ name: 'auditor' });
  await admin.identityProviders.create({
    alias: KEYCLOAK_IDP_ALIAS,
    providerId: 'saml',
    enabled: true,
    config: { singleSignOnServiceUrl: 'http://127.0.0.1:9/sso', entityId: 'offboard-sandbox' },
  });
  for (const group of SAMPLE_GROUPS) await admin.groups.create({ name: group.cn });
  return { realm, clientId: KEYCLOAK_OFFBOARD_CLIENT, clientSecret: secret.value!, admin };
}

/**
 * One sample person as a Keycloak user: their groups, the realm role `auditor`, the client role
 * `sample-app approver`, and a link to the corporate identity provider. Returns the user id.
 */
export async function addPerson(seeded: SeededRealm, person: SamplePerson): Promise<string> {
  const { admin, realm } = seeded;
  const { id } = await admin.users.create({
    realm,
    username: person.uid,
    email: person.email,
    emailVerified: true,
    firstName: person.givenName,
    lastName: person.sn,
    enabled: true,
    attributes: { employeeNumber: [person.employeeId] },
    credentials: [{ type: 'password', value: KEYCLOAK_USER_PASSWORD, temporary: false }],
  });
  const groups = await admin.groups.find({ realm, max: 100 });
  for (const cn of person.groups) {
    const group = groups.find((g) => g.name === cn);
    if (group) await admin.users.addToGroup({ realm, id, groupId: group.id! });
  }
  const auditor = await admin.roles.findOneByName({ realm, name: 'auditor' });
  await admin.users.addRealmRoleMappings({ realm, id, roles: [{ id: auditor!.id!, name: 'auditor' }] });
  const [app] = await admin.clients.find({ realm, clientId: KEYCLOAK_APP_CLIENT });
  const approver = await admin.clients.findRole({ realm, id: app!.id!, roleName: 'approver' });
  await admin.users.addClientRoleMappings({
    realm,
    id,
    clientUniqueId: app!.id!,
    roles: [{ id: approver!.id!, name: 'approver' }],
  });
  await admin.users.addToFederatedIdentity({
    realm,
    id,
    federatedIdentityId: KEYCLOAK_IDP_ALIAS,
    federatedIdentity: {
      identityProvider: KEYCLOAK_IDP_ALIAS,
      userId: `saml-${person.employeeId}`,
      userName: person.uid,
    },
  });
  return id;
}

export interface AppTokens {
  refreshToken: string;
  accessToken: string;
}

/** What an application (and an attacker holding its tokens) does: the password grant at the real token endpoint. */
export async function signIn(
  keycloak: KeycloakInstance,
  realm: string,
  username: string,
  options: { offline?: boolean } = {},
): Promise<AppTokens> {
  const answer = await tokenRequest(keycloak, realm, {
    grant_type: 'password',
    client_id: KEYCLOAK_APP_CLIENT,
    username,
    password: KEYCLOAK_USER_PASSWORD,
    scope: options.offline ? 'openid offline_access' : 'openid',
  });
  if (answer.status !== 200)
    throw new Error(`sign-in of ${username} failed: ${answer.status} ${JSON.stringify(answer.body)}`);
  return { refreshToken: String(answer.body.refresh_token), accessToken: String(answer.body.access_token) };
}

/** Uses a refresh (or offline) token at the real token endpoint: 200 with new tokens, or 400 invalid_grant. */
export async function refresh(
  keycloak: KeycloakInstance,
  realm: string,
  refreshToken: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return tokenRequest(keycloak, realm, {
    grant_type: 'refresh_token',
    client_id: KEYCLOAK_APP_CLIENT,
    refresh_token: refreshToken,
  });
}

async function tokenRequest(
  keycloak: KeycloakInstance,
  realm: string,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${keycloak.url}/realms/${encodeURIComponent(realm)}/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
