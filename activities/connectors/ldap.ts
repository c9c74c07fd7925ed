/**
 * LDAP connector (OpenLDAP). The person is found by the HR id in a configured attribute
 * (employeeNumber by default) and then addressed by entryUUID, which never changes when an entry
 * is renamed or moved. Filters are built as filter objects, never by pasting strings, so an
 * identifier such as `*)(uid=*` is matched literally.
 *
 * Login is disabled with the ppolicy overlay's pwdAccountLockedTime (000001010000Z: locked until
 * an administrator unlocks it; a lockout after failed binds, any other value, is not a disabled
 * login: it ends by itself, so disable_login replaces it); groups are groupOfNames (member), groupOfUniqueNames
 * (uniqueMember) and posixGroup (memberUid).
 *
 * `mode: 'ad'` switches to Active Directory (userAccountControl, objectGUID, group objects): see
 * active-directory.ts.
 */
import {
  Attribute,
  Change,
  Client,
  EqualityFilter,
  OrFilter,
  AndFilter,
  ResultCodeError,
  type Filter,
  type Entry,
} from 'ldapts';
import type { Action, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { createActiveDirectoryConnector } from './active-directory.js';
import { defineConnector } from './descriptor.js';
import { directoryIdentity, managerEmailOf } from './directory-identity.js';
import { ldapSystemSchema, type LdapSystemConfig } from './ldap-common.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

export { ldapSystemSchema, type LdapSystemConfig } from './ldap-common.js';

export const ldapConnector = defineConnector({
  type: 'ldap',
  configSchema: ldapSystemSchema,
  secretFields: ['bindPassword'],
  // The same in `mode: ad` (active-directory.ts): sessions and tokens are not_applicable in both.
  capabilities: {
    actions: ['disable_login', 'enable_login', 'remove_entitlement', 'delete_account'],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createLdapConnector(system, config),
});

const LOCKED_FOREVER = '000001010000Z';

const GROUP_KINDS = {
  groupOfNames: 'member',
  groupOfUniqueNames: 'uniqueMember',
  posixGroup: 'memberUid',
} as const;
type GroupKind = keyof typeof GROUP_KINDS;

// Result codes (RFC 4511) whose retry cannot help: the fix is in credentials, ACLs or config.
const PERMANENT_CODES: Record<number, string> = {
  32: 'noSuchObject (is the base DN in the config right?)',
  34: 'invalidDNSyntax',
  49: 'invalidCredentials: check the bind DN and password in the config',
  50: 'insufficientAccessRights: grant the bind DN write access to people and groups',
  53: 'unwillingToPerform',
  65: 'objectClassViolation',
};

function classify(err: unknown, doing: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof ResultCodeError) {
    const permanent = PERMANENT_CODES[err.code];
    return new ConnectorError(
      `LDAP ${doing} failed: ${permanent ?? `result code ${err.code}`}: ${err.message}`,
      !permanent,
      `ldap_${err.code}`,
    );
  }
  // Socket errors and timeouts: the directory may be back in a moment.
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectorError(`LDAP ${doing} failed: ${message}`, true, 'ldap_unreachable');
}

const first = (entry: Entry, attribute: string): string | undefined => {
  const value = entry[attribute];
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined ? undefined : String(one);
};
const all = (entry: Entry, attribute: string): string[] => {
  const value = entry[attribute];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
};

interface Person {
  dn: string;
  uuid: string;
  uid: string | undefined;
  mail: string | undefined;
  /** The DN in the entry's `manager` attribute. */
  manager: string | undefined;
  locked: boolean;
}

export function createLdapConnector(system: string, config: LdapSystemConfig): Connector {
  if (config.mode === 'ad') return createActiveDirectoryConnector(system, config);
  const employeeIdAttribute = config.employeeIdAttribute ?? 'employeeNumber';

  async function withClient<T>(doing: string, work: (client: Client) => Promise<T>): Promise<T> {
    // ldapts speaks TLS whenever tlsOptions is given, so it is passed for ldaps:// only.
    const tls = config.url.startsWith('ldaps://')
      ? { tlsOptions: { rejectUnauthorized: config.tlsRejectUnauthorized } }
      : {};
    const client = new Client({ url: config.url, timeout: config.timeoutMs, connectTimeout: config.timeoutMs, ...tls });
    try {
      await client.bind(config.bindDn, config.bindPassword);
      return await work(client);
    } catch (err) {
      throw classify(err, doing);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** Exactly one entry or an error that changes nothing: a lookup is never widened. */
  async function findOne(client: Client, filter: Filter, what: string): Promise<Person | undefined> {
    const { searchEntries } = await client
      .search(config.peopleBase, {
        scope: 'sub',
        filter,
        attributes: ['entryUUID', 'uid', 'mail', 'manager', 'pwdAccountLockedTime'],
        sizeLimit: 2,
      })
      .catch((err: unknown) => {
        // sizeLimitExceeded (4) means more than one entry matched.
        if (err instanceof ResultCodeError && err.code === 4)
          return { searchEntries: [{ dn: '' }, { dn: '' }] as Entry[] };
        throw err;
      });
    if (searchEntries.length > 1) {
      throw new ConnectorError(
        `LDAP: ${what} matches several entries under ${config.peopleBase}; refusing to guess — make the identifier unique`,
        false,
        'ambiguous_identity',
      );
    }
    const entry = searchEntries[0];
    if (!entry) return undefined;
    return {
      dn: entry.dn,
      uuid: first(entry, 'entryUUID') ?? '',
      uid: first(entry, 'uid'),
      mail: first(entry, 'mail'),
      manager: first(entry, 'manager'),
      // Only the value that means "until an administrator unlocks it" is a disabled login: any
      // other is ppolicy's lockout after failed binds, which ends by itself after
      // pwdLockoutDuration, so it must not make disable_login say `already`.
      locked: all(entry, 'pwdAccountLockedTime').includes(LOCKED_FOREVER),
    };
  }

  const byEmployeeId = (client: Client, employeeId: string) =>
    findOne(
      client,
      new EqualityFilter({ attribute: employeeIdAttribute, value: employeeId }),
      `${employeeIdAttribute}=${employeeId}`,
    );
  const byUuid = (client: Client, uuid: string) =>
    findOne(client, new EqualityFilter({ attribute: 'entryUUID', value: uuid }), `entryUUID=${uuid}`);

  function membershipFilter(person: Person): Filter {
    const kinds: Filter[] = [
      new AndFilter({
        filters: [
          new EqualityFilter({ attribute: 'objectClass', value: 'groupOfNames' }),
          new EqualityFilter({ attribute: 'member', value: person.dn }),
        ],
      }),
      new AndFilter({
        filters: [
          new EqualityFilter({ attribute: 'objectClass', value: 'groupOfUniqueNames' }),
          new EqualityFilter({ attribute: 'uniqueMember', value: person.dn }),
        ],
      }),
    ];
    if (person.uid) {
      kinds.push(
        new AndFilter({
          filters: [
            new EqualityFilter({ attribute: 'objectClass', value: 'posixGroup' }),
            new EqualityFilter({ attribute: 'memberUid', value: person.uid }),
          ],
        }),
      );
    }
    return new OrFilter({ filters: kinds });
  }

  async function memberships(client: Client, person: Person): Promise<Entitlement[]> {
    const { searchEntries } = await client.search(config.groupsBase, {
      scope: 'sub',
      filter: membershipFilter(person),
      attributes: ['objectClass', 'cn'],
    });
    return searchEntries.map((group) => {
      const classes = all(group, 'objectClass');
      const kind =
        (Object.keys(GROUP_KINDS) as GroupKind[]).find((k) =>
          classes.some((c) => c.toLowerCase() === k.toLowerCase()),
        ) ?? 'groupOfNames';
      return { id: group.dn, kind, name: first(group, 'cn') };
    });
  }

  async function isMember(client: Client, groupDn: string, attribute: string, value: string): Promise<boolean> {
    try {
      const { searchEntries } = await client.search(groupDn, {
        scope: 'base',
        filter: new EqualityFilter({ attribute, value }),
        attributes: ['cn'],
      });
      return searchEntries.length > 0;
    } catch (err) {
      if (err instanceof ResultCodeError && err.code === 32) return false; // the group is gone
      throw err;
    }
  }

  async function removeFromGroup(
    client: Client,
    person: Person,
    groupDn: string,
    kind: GroupKind,
  ): Promise<'done' | 'already'> {
    const attribute = GROUP_KINDS[kind];
    const value = kind === 'posixGroup' ? person.uid : person.dn;
    // Read first: "already gone" must be reported as such even where we could not write.
    if (!value || !(await isMember(client, groupDn, attribute, value))) return 'already';
    try {
      await client.modify(
        groupDn,
        new Change({ operation: 'delete', modification: new Attribute({ type: attribute, values: [value] }) }),
      );
      return 'done';
    } catch (err) {
      // 16 noSuchAttribute: removed meanwhile; 32 noSuchObject: the group is gone.
      if (err instanceof ResultCodeError && (err.code === 16 || err.code === 32)) return 'already';
      if (err instanceof ResultCodeError && err.code === 65) {
        throw new ConnectorError(
          `LDAP: removing the last ${attribute} of ${groupDn} would leave a ${kind} with no members, which its schema forbids; add a placeholder member or delete the group, then retry`,
          false,
          'ldap_65',
        );
      }
      if (err instanceof ResultCodeError && err.code === 50) {
        throw new ConnectorError(
          `LDAP: the bind DN may not change ${groupDn} (insufficientAccessRights); remove the member by hand or grant write access, then retry`,
          false,
          'ldap_50',
        );
      }
      throw err;
    }
  }

  async function apply(action: Action): Promise<ApplyResult> {
    return withClient(action.kind, async (client) => {
      const person = await byUuid(client, action.accountId);
      if (!person) {
        if (action.kind === 'enable_login') {
          throw new ConnectorError(
            `LDAP: entry ${action.accountId} no longer exists; it cannot be re-enabled`,
            false,
            'account_gone',
          );
        }
        return { outcome: 'already', details: { entryUUID: action.accountId, note: 'entry no longer exists' } };
      }
      switch (action.kind) {
        case 'disable_login': {
          if (person.locked) return { outcome: 'already', details: { dn: person.dn } };
          await client.modify(
            person.dn,
            new Change({
              operation: 'replace',
              modification: new Attribute({ type: 'pwdAccountLockedTime', values: [LOCKED_FOREVER] }),
            }),
          );
          return { outcome: 'done', details: { dn: person.dn, pwdAccountLockedTime: LOCKED_FOREVER } };
        }
        case 'enable_login': {
          if (!person.locked) return { outcome: 'already', details: { dn: person.dn } };
          try {
            await client.modify(
              person.dn,
              new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime' }) }),
            );
          } catch (err) {
            if (err instanceof ResultCodeError && err.code === 16)
              return { outcome: 'already', details: { dn: person.dn } };
            throw err;
          }
          return { outcome: 'done', details: { dn: person.dn } };
        }
        case 'remove_entitlement': {
          if (!action.target)
            throw new ConnectorError('remove_entitlement without a target group', false, 'bad_action');
          const kind = (action.target.kind in GROUP_KINDS ? action.target.kind : 'groupOfNames') as GroupKind;
          const outcome = await removeFromGroup(client, person, action.target.id, kind);
          return { outcome, details: { dn: person.dn, group: action.target.id, groupKind: kind } };
        }
        case 'delete_account': {
          // Memberships first, so that no group is left naming a DN that no longer exists.
          const groups = await memberships(client, person);
          for (const group of groups) await removeFromGroup(client, person, group.id, group.kind as GroupKind);
          try {
            await client.del(person.dn);
          } catch (err) {
            if (err instanceof ResultCodeError && err.code === 32)
              return { outcome: 'already', details: { dn: person.dn } };
            throw err;
          }
          return { outcome: 'done', details: { dn: person.dn, groupsLeft: groups.map((g) => g.id) } };
        }
        case 'revoke_sessions':
        case 'revoke_tokens':
        case 'transfer_ownership':
          // A directory holds no sessions or tokens of its own; binds are checked at each login.
          return { outcome: 'not_applicable', details: { reason: 'LDAP keeps no sessions or tokens' } };
      }
    });
  }

  return {
    system,
    providesIdentity: true,
    async discover(subject: Subject): Promise<Discovery> {
      return withClient('discover', async (client) => {
        const person = await byEmployeeId(client, subject.employeeId);
        if (!person) return { system, account: null, entitlements: [], credentials: [] };
        return {
          system,
          account: { id: person.uuid, disabled: person.locked },
          entitlements: await memberships(client, person),
          credentials: [],
          // The directory is where the rest of the company's systems learn a person's email, and
          // where the manager's notifications learn whom to tell.
          ...directoryIdentity(person.mail, await managerEmailOf(client, person.manager)),
        };
      });
    },
    apply,
    /** Binds with the service account and reads the people base: the credentials and the base DN both work. */
    async check() {
      await withClient('check', (client) => client.search(config.peopleBase, { scope: 'base', attributes: ['1.1'] }));
    },
    async close() {},
  };
}
