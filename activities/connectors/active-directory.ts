/**
 * Active Directory mode of the LDAP connector (`type: 'ldap', mode: 'ad'`).
 *
 * The person is found by the HR id in `employeeIdAttribute` (employeeID by default) among user
 * objects (objectCategory=person, objectClass=user) under peopleBase and disabledOu, then addressed
 * by objectGUID, which survives renames and moves. account.id is the GUID in AD's usual string
 * form (as Get-ADUser shows it); the search sends its 16 bytes as a binary filter value, and an id
 * that is not a GUID matches nothing. Filters are filter objects, never pasted strings.
 *
 * Action mapping:
 * - disable_login: set ACCOUNTDISABLE (0x2) in userAccountControl (read, OR, replace). With
 *   `disabledOu`, the entry is then moved there, and the OU it came from is kept in
 *   `originalOuAttribute` (adminDescription by default) as "offboard: moved from <DN>", written in
 *   the same modify as the flag: the entry itself remembers where it belongs, so enable_login
 *   can move it back whichever worker runs it. If that attribute holds someone else's text, the
 *   entry is disabled but not moved (details say why), rather than overwrite it.
 * - enable_login: move back (when we moved it), clear 0x2 and our mark.
 * - remove_entitlement: delete the user's DN from the group's `member` (memberOf is computed from
 *   it) with the permissive-modify control; a user who is no longer a member is `already`.
 * - delete_account: delete the user object. AD turns it into a tombstone under CN=Deleted Objects
 *   (tombstoneLifetime, 180 days by default; restorable with its groups only where the Recycle
 *   Bin is enabled) and drops its group links itself. Whether a playbook deletes at all is policy.
 * - revoke_sessions / revoke_tokens: not_applicable. AD has no operation that revokes Kerberos
 *   tickets already issued: they stay valid until they expire (10 h by default for a TGT); a
 *   disabled account gets no new TGT, cannot renew one, and its binds and NTLM logons fail.
 * - transfer_ownership: not_applicable.
 *
 * AD refuses simple binds without TLS: use ldaps:// (ldap:// is upgraded with StartTLS). Samba,
 * which the tests run against, differs from Windows here: it answers 53 "Attribute member already
 * deleted" even with permissive modify (Windows answers success), ignores a client's sizeLimit,
 * ends a filter value at a NUL byte, does not check the old value in a delete+add of
 * userAccountControl (so no compare-and-swap is attempted: a change made between our read and
 * write could be lost), answers 80 (treated like 32) for a move into a missing OU, and runs no
 * AdminSDHolder/SDProp (Account Operators can change any group there, Domain Admins included).
 */
import {
  AndFilter,
  Attribute,
  Change,
  Client,
  Control,
  EqualityFilter,
  ResultCodeError,
  type Entry,
  type Filter,
} from 'ldapts';
import type { Action, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import type { LdapSystemConfig } from './ldap-common.js';
import { directoryIdentity, managerEmailOf } from './directory-identity.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

const ACCOUNTDISABLE = 0x2;
/** LDAP_SERVER_PERMISSIVE_MODIFY_OID: removing an absent value is not an error. */
const PERMISSIVE_MODIFY = '1.2.840.113556.1.4.1413';
const MOVED_MARK = 'offboard: moved from ';

// Result codes whose retry cannot help: the fix is in the config, the account or its rights.
const PERMANENT_CODES: Record<number, string> = {
  8: 'strongerAuthRequired: AD accepts simple binds over TLS only; use an ldaps:// URL',
  19: 'constraintViolation',
  32: 'noSuchObject (are peopleBase, groupsBase and disabledOu in the config right?)',
  34: 'invalidDNSyntax',
  50: 'insufficientAccessRights: grant the bind account write access to userAccountControl, member, and (for disabledOu) the right to move users between the OUs',
  53: 'unwillingToPerform',
  64: 'namingViolation',
  65: 'objectClassViolation',
  66: 'notAllowedOnNonLeaf',
  68: 'entryAlreadyExists',
};

// The Win32 code in an AD bind failure ("data 52e") says what is wrong with the bind account.
const BIND_FAILURES: Record<string, string> = {
  '525': 'the bind account does not exist',
  '52e': 'the password is wrong',
  '530': 'the bind account may not log on at this time',
  '531': 'the bind account may not log on from this host',
  '532': "the bind account's password has expired",
  '533': 'the bind account is disabled',
  '701': 'the bind account has expired',
  '773': 'the bind account must change its password',
  '775': 'the bind account is locked out',
};

function classify(err: unknown, doing: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof ResultCodeError) {
    if (err.code === 49) {
      const reason =
        BIND_FAILURES[/data ([0-9a-f]{3})/i.exec(err.message)?.[1]?.toLowerCase() ?? ''] ?? 'invalid credentials';
      return new ConnectorError(
        `AD ${doing} failed: ${reason}: check bindDn and bindPassword in the config`,
        false,
        'ldap_49',
      );
    }
    const permanent = PERMANENT_CODES[err.code];
    return new ConnectorError(
      `AD ${doing} failed: ${permanent ?? `result code ${err.code}`}: ${err.message}`,
      !permanent,
      `ldap_${err.code}`,
    );
  }
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  // A certificate that is not trusted today will not be trusted on the next attempt either.
  if (typeof code === 'string' && /CERT|SIGNATURE|ISSUER/.test(code)) {
    return new ConnectorError(
      `AD ${doing} failed: the DC's TLS certificate is not trusted (${code}): add its CA to NODE_EXTRA_CA_CERTS, or for a test DC only set tlsRejectUnauthorized: false`,
      false,
      'ad_tls_untrusted',
    );
  }
  // Socket errors and timeouts: the DC may be back in a moment.
  return new ConnectorError(`AD ${doing} failed: ${message}`, true, 'ldap_unreachable');
}

/** Values of an attribute, whatever case the server spelt its name in. */
function values(entry: Entry, attribute: string): (string | Buffer)[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}
const text = (entry: Entry, attribute: string): string | undefined => {
  const value = values(entry, attribute)[0];
  return value === undefined ? undefined : String(value);
};

/** objectGUID bytes to AD's string form: the first three groups are little-endian. */
function guidToString(bytes: Buffer): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = [...bytes.subarray(from, to)];
    return (reverse ? part.reverse() : part).map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  return [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)].join('-');
}

/** The inverse of guidToString; anything else is not a GUID and must match nothing. */
function guidToBytes(guid: string): Buffer | undefined {
  const match = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(guid);
  if (!match) return undefined;
  const [, a = '', b = '', c = '', d = '', e = ''] = match;
  const le = (h: string) => Buffer.from(h, 'hex').reverse();
  return Buffer.concat([le(a), le(b), le(c), Buffer.from(d + e, 'hex')]);
}

/** DNs as AD writes them have no spaces after commas; configs often do. */
const normalizeDn = (dn: string) => dn.replace(/\s*,\s*/g, ',').toLowerCase();
const sameDn = (a: string, b: string) => normalizeDn(a) === normalizeDn(b);
const isUnder = (dn: string, base: string) => normalizeDn(dn).endsWith(`,${normalizeDn(base)}`);

/** The first RDN and the parent of a DN (an escaped comma, `\,`, belongs to the RDN). */
function splitDn(dn: string): { rdn: string; parent: string } {
  const at = dn.search(/[^\\],/);
  if (at < 0) return { rdn: dn, parent: '' };
  return { rdn: dn.slice(0, at + 1), parent: dn.slice(at + 2) };
}

interface AdUser {
  dn: string;
  guid: string;
  userAccountControl: number;
  mail: string | undefined;
  /** The DN in the user's `manager` attribute. */
  manager: string | undefined;
  /** The OU offboard moved the entry from, when the mark is ours. */
  movedFrom: string | undefined;
  /** The mark attribute holds text offboard did not write. */
  markTaken: boolean;
}

const isDisabled = (user: AdUser) => (user.userAccountControl & ACCOUNTDISABLE) !== 0;

export function createActiveDirectoryConnector(system: string, config: LdapSystemConfig): Connector {
  const employeeIdAttribute = config.employeeIdAttribute ?? 'employeeID';
  const markAttribute = config.originalOuAttribute;
  const disabledOu = config.disabledOu;
  // A disabled entry moved out of peopleBase must still be found, or discovery would call it gone.
  const userBases =
    disabledOu && !isUnder(disabledOu, config.peopleBase) && !sameDn(disabledOu, config.peopleBase)
      ? [config.peopleBase, disabledOu]
      : [config.peopleBase];
  const tlsOptions = { rejectUnauthorized: config.tlsRejectUnauthorized };

  async function withClient<T>(doing: string, work: (client: Client) => Promise<T>): Promise<T> {
    // ldapts speaks TLS from the first byte whenever tlsOptions is given: ldap:// gets StartTLS instead.
    const startTls = config.url.startsWith('ldap://');
    const client = new Client({
      url: config.url,
      timeout: config.timeoutMs,
      connectTimeout: config.timeoutMs,
      ...(startTls ? {} : { tlsOptions }),
    });
    try {
      if (startTls) await client.startTLS(tlsOptions);
      await client.bind(config.bindDn, config.bindPassword);
      return await work(client);
    } catch (err) {
      throw classify(err, doing);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** Exactly one user or an error that changes nothing: a lookup is never widened. */
  async function findUser(client: Client, match: Filter, what: string): Promise<AdUser | undefined> {
    const filter = new AndFilter({
      filters: [
        new EqualityFilter({ attribute: 'objectCategory', value: 'person' }),
        new EqualityFilter({ attribute: 'objectClass', value: 'user' }),
        match,
      ],
    });
    const found: Entry[] = [];
    for (const base of userBases) {
      const { searchEntries } = await client
        .search(base, {
          scope: 'sub',
          filter,
          attributes: ['objectGUID', 'userAccountControl', 'mail', 'manager', markAttribute],
          explicitBufferAttributes: ['objectGUID'],
          sizeLimit: 2,
        })
        .catch((err: unknown) => {
          // sizeLimitExceeded (4) means more than one entry matched (Windows honours sizeLimit; Samba ignores it).
          if (err instanceof ResultCodeError && err.code === 4)
            return { searchEntries: [{ dn: '' }, { dn: '' }] as Entry[] };
          throw err;
        });
      found.push(...searchEntries);
    }
    if (found.length > 1) {
      throw new ConnectorError(
        `AD: ${what} matches several user objects under ${userBases.join(' and ')}; refusing to guess — make the identifier unique`,
        false,
        'ambiguous_identity',
      );
    }
    const entry = found[0];
    if (!entry) return undefined;
    const guid = values(entry, 'objectGUID')[0];
    if (!Buffer.isBuffer(guid) || guid.length !== 16)
      throw new ConnectorError(
        `AD: ${entry.dn} came back without an objectGUID; is the bind account allowed to read it?`,
        false,
        'ad_no_guid',
      );
    const mark = text(entry, markAttribute);
    return {
      dn: entry.dn,
      guid: guidToString(guid),
      userAccountControl: Number(text(entry, 'userAccountControl') ?? 0),
      mail: text(entry, 'mail'),
      manager: text(entry, 'manager'),
      movedFrom: mark?.startsWith(MOVED_MARK) ? mark.slice(MOVED_MARK.length) : undefined,
      markTaken: mark !== undefined && mark !== '' && !mark.startsWith(MOVED_MARK),
    };
  }

  const byEmployeeId = async (client: Client, employeeId: string) =>
    // Samba ends a filter value at a NUL byte ("E1\0x" would find E1), so such an id matches nothing.
    employeeId.includes('\u0000')
      ? undefined
      : findUser(
          client,
          new EqualityFilter({ attribute: employeeIdAttribute, value: employeeId }),
          `${employeeIdAttribute}=${employeeId}`,
        );
  const byGuid = async (client: Client, guid: string) => {
    const bytes = guidToBytes(guid);
    return bytes
      ? findUser(client, new EqualityFilter({ attribute: 'objectGUID', value: bytes }), `objectGUID=${guid}`)
      : undefined;
  };

  const memberFilter = (dn: string) =>
    new AndFilter({
      filters: [
        new EqualityFilter({ attribute: 'objectClass', value: 'group' }),
        new EqualityFilter({ attribute: 'member', value: dn }),
      ],
    });

  /** Direct memberships, read on the group side (memberOf is computed and may omit some groups). */
  async function memberships(client: Client, user: AdUser): Promise<Entitlement[]> {
    const { searchEntries } = await client.search(config.groupsBase, {
      scope: 'sub',
      filter: memberFilter(user.dn),
      attributes: ['cn'],
      paged: { pageSize: 500 },
    });
    return searchEntries.map((group) => ({ id: group.dn, kind: 'group', name: text(group, 'cn') }));
  }

  async function isMember(client: Client, groupDn: string, userDn: string): Promise<boolean> {
    try {
      const { searchEntries } = await client.search(groupDn, {
        scope: 'base',
        filter: memberFilter(userDn),
        attributes: ['cn'],
      });
      return searchEntries.length > 0;
    } catch (err) {
      if (err instanceof ResultCodeError && err.code === 32) return false; // the group is gone
      throw err;
    }
  }

  async function removeMember(client: Client, user: AdUser, groupDn: string): Promise<'done' | 'already'> {
    // Read first: "already gone" must be reported as such even where we could not write.
    if (!(await isMember(client, groupDn, user.dn))) return 'already';
    try {
      await client.modify(
        groupDn,
        new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [user.dn] }) }),
        new Control(PERMISSIVE_MODIFY),
      );
    } catch (err) {
      if (err instanceof ResultCodeError && (err.code === 16 || err.code === 32)) return 'already';
      // Samba answers 53 "already deleted" where Windows honours permissive modify; 53 can mean
      // other refusals too, so only a membership that is really gone counts as done before.
      if (err instanceof ResultCodeError && err.code === 53 && !(await isMember(client, groupDn, user.dn)))
        return 'already';
      if (err instanceof ResultCodeError && err.code === 50) {
        throw new ConnectorError(
          `AD: the bind account may not change the members of ${groupDn} (insufficientAccessRights); remove the member by hand or delegate "Write Members" on it, then retry`,
          false,
          'ldap_50',
        );
      }
      throw err;
    }
    // Permissive modify makes a delete of a value that is not there succeed: only the group, read
    // back, tells whether the member went.
    if (await isMember(client, groupDn, user.dn)) {
      throw new ConnectorError(
        `AD: the server accepted removing ${user.dn} from ${groupDn}, but the group, read back, still lists them; remove the member by hand, then retry`,
        false,
        'ad_removal_ignored',
      );
    }
    return 'done';
  }

  /** Moves the entry under `parent`; returns its new DN. */
  async function move(client: Client, dn: string, parent: string, why: string): Promise<string> {
    const target = `${splitDn(dn).rdn},${parent}`;
    try {
      await client.modifyDN(dn, target);
      return target;
    } catch (err) {
      if (err instanceof ResultCodeError && err.code === 68) {
        throw new ConnectorError(
          `AD: cannot move ${dn} ${why}: ${parent} already holds an entry with the same name; rename one of them, then retry`,
          false,
          'ldap_68',
        );
      }
      // noSuchObject, or Samba's 80 "parent does not exist": the OU is gone.
      if (err instanceof ResultCodeError && (err.code === 32 || err.code === 80)) {
        throw new ConnectorError(
          `AD: cannot move ${dn} ${why}: ${parent} does not exist (${err.message}); create it or move the entry by hand, then retry`,
          false,
          `ldap_${err.code}`,
        );
      }
      throw err;
    }
  }

  async function disable(client: Client, user: AdUser): Promise<ApplyResult> {
    const details: Record<string, unknown> = { dn: user.dn, objectGUID: user.guid };
    const wantsMove = disabledOu !== undefined && !sameDn(splitDn(user.dn).parent, disabledOu);
    // Disabled by someone else (no mark of ours): leave the account exactly as it is.
    if (isDisabled(user) && !(wantsMove && user.movedFrom !== undefined)) return { outcome: 'already', details };
    let marked = user.movedFrom !== undefined;
    if (!isDisabled(user)) {
      const uac = user.userAccountControl | ACCOUNTDISABLE;
      const changes = [
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'userAccountControl', values: [String(uac)] }),
        }),
      ];
      if (wantsMove && !user.markTaken) {
        changes.push(
          new Change({
            operation: 'replace',
            modification: new Attribute({ type: markAttribute, values: [MOVED_MARK + splitDn(user.dn).parent] }),
          }),
        );
        marked = true;
      }
      await client.modify(user.dn, changes);
      details.userAccountControl = uac;
    }
    if (wantsMove && marked && disabledOu) {
      details.movedFrom = splitDn(user.dn).parent;
      details.dn = await move(client, user.dn, disabledOu, 'to disabledOu');
    } else if (wantsMove) {
      details.notMoved = `${markAttribute} already holds other text, and offboard would need it to move the entry back; clear it or set originalOuAttribute to an unused attribute`;
    }
    return { outcome: 'done', details };
  }

  async function enable(client: Client, user: AdUser): Promise<ApplyResult> {
    const details: Record<string, unknown> = { dn: user.dn, objectGUID: user.guid };
    let dn = user.dn;
    let changed = false;
    if (user.movedFrom !== undefined && !sameDn(splitDn(dn).parent, user.movedFrom)) {
      dn = await move(client, dn, user.movedFrom, 'back to the OU it was disabled in');
      details.movedBackTo = user.movedFrom;
      details.dn = dn;
      changed = true;
    }
    const changes: Change[] = [];
    if (isDisabled(user)) {
      const uac = user.userAccountControl & ~ACCOUNTDISABLE;
      changes.push(
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'userAccountControl', values: [String(uac)] }),
        }),
      );
      details.userAccountControl = uac;
    }
    if (user.movedFrom !== undefined)
      changes.push(new Change({ operation: 'delete', modification: new Attribute({ type: markAttribute }) }));
    if (changes.length > 0) {
      await client.modify(dn, changes);
      changed = true;
    }
    return { outcome: changed ? 'done' : 'already', details };
  }

  async function remove(client: Client, user: AdUser): Promise<ApplyResult> {
    // Recorded for the audit trail: AD drops these links itself when the object is deleted.
    const groups = await memberships(client, user);
    try {
      await client.del(user.dn);
    } catch (err) {
      if (err instanceof ResultCodeError && err.code === 32)
        return { outcome: 'already', details: { dn: user.dn, objectGUID: user.guid } };
      if (err instanceof ResultCodeError && err.code === 66) {
        throw new ConnectorError(
          `AD: ${user.dn} has child objects (mobile devices, for instance) and a plain delete would leave them; delete the subtree by hand, then retry`,
          false,
          'ldap_66',
        );
      }
      throw err;
    }
    return {
      outcome: 'done',
      details: {
        dn: user.dn,
        objectGUID: user.guid,
        groupsLeft: groups.map((g) => g.id),
        note: 'AD keeps a tombstone under CN=Deleted Objects',
      },
    };
  }

  async function apply(action: Action): Promise<ApplyResult> {
    return withClient(action.kind, async (client) => {
      const user = await byGuid(client, action.accountId);
      if (!user) {
        if (action.kind === 'enable_login') {
          throw new ConnectorError(
            `AD: user ${action.accountId} no longer exists (deleted accounts become tombstones); it cannot be re-enabled here — restore it from the Recycle Bin if that is enabled`,
            false,
            'account_gone',
          );
        }
        return {
          outcome: 'already',
          details: { objectGUID: action.accountId, note: 'no user object with this objectGUID' },
        };
      }
      switch (action.kind) {
        case 'disable_login':
          return disable(client, user);
        case 'enable_login':
          return enable(client, user);
        case 'remove_entitlement': {
          if (!action.target)
            throw new ConnectorError('remove_entitlement without a target group', false, 'bad_action');
          const outcome = await removeMember(client, user, action.target.id);
          return { outcome, details: { dn: user.dn, objectGUID: user.guid, group: action.target.id } };
        }
        case 'delete_account':
          return remove(client, user);
        case 'revoke_sessions':
        case 'revoke_tokens':
          return {
            outcome: 'not_applicable',
            details: {
              reason:
                'AD cannot revoke Kerberos tickets already issued; they expire (10 h by default for a TGT), and a disabled account gets no new ones',
            },
          };
        case 'transfer_ownership':
          return { outcome: 'not_applicable', details: { reason: 'a directory account owns nothing to transfer' } };
      }
    });
  }

  return {
    system,
    providesIdentity: true,
    async discover(subject: Subject): Promise<Discovery> {
      return withClient('discover', async (client) => {
        const user = await byEmployeeId(client, subject.employeeId);
        if (!user) return { system, account: null, entitlements: [], credentials: [] };
        return {
          system,
          account: { id: user.guid, disabled: isDisabled(user) },
          entitlements: await memberships(client, user),
          credentials: [],
          ...directoryIdentity(user.mail, await managerEmailOf(client, user.manager)),
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
