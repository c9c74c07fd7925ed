/**
 * The sample organisation as an Active Directory domain, for the throwaway Samba DC that
 * scripts/services.ts starts: the same people, groups and ambiguous twins as the slapd seed, under
 * AD's names (user and group objects, sAMAccountName, employeeID).
 */
import { DUPLICATED_EMPLOYEE_ID } from './ldif.js';
import { SAMPLE_GROUPS, SAMPLE_PEOPLE, samplePerson } from './org.js';

export const AD_REALM = 'EXAMPLE.TEST';
export const AD_DOMAIN = 'EXAMPLE';
export const AD_BASE_DN = 'DC=example,DC=test';
export const AD_PEOPLE_BASE = `OU=People,${AD_BASE_DN}`;
export const AD_GROUPS_BASE = `OU=Groups,${AD_BASE_DN}`;
export const AD_DISABLED_OU = `OU=Disabled Users,${AD_BASE_DN}`;
export const AD_SERVICES_OU = `OU=Service Accounts,${AD_BASE_DN}`;
export const AD_SERVICE_DN = `CN=offboard,${AD_SERVICES_OU}`;
/** Built-in group whose default rights cover creating, changing, moving and deleting users and groups. */
export const AD_ACCOUNT_OPERATORS_DN = `CN=Account Operators,CN=Builtin,${AD_BASE_DN}`;
/** AD's default password policy wants three character classes, so the slapd password would be refused. */
export const AD_USER_PASSWORD = 'Sandbox-User-Password-1';

/** sAMAccountName holds at most 20 characters. */
export const adAccountName = (uid: string) => uid.slice(0, 20);
export const adPersonDn = (uid: string) => `CN=${uid},${AD_PEOPLE_BASE}`;
export const adGroupDn = (cn: string) => `CN=${cn},${AD_GROUPS_BASE}`;

export interface AdSeedEntry {
  dn: string;
  attributes: Record<string, string | string[]>;
  /** Set as unicodePwd, which AD accepts over TLS only. */
  password?: string;
}

const user = (uid: string, extra: Record<string, string>): AdSeedEntry => ({
  dn: adPersonDn(uid),
  attributes: {
    objectClass: ['top', 'person', 'organizationalPerson', 'user'],
    sAMAccountName: adAccountName(uid),
    userPrincipalName: `${adAccountName(uid)}@${AD_REALM.toLowerCase()}`,
    // 512 = NORMAL_ACCOUNT: enabled (a user added without it starts disabled).
    userAccountControl: '512',
    ...extra,
  },
  password: AD_USER_PASSWORD,
});

/** Organisational units, people, the twins and the groups, in an order AD accepts them. */
export function sampleAdEntries(servicePassword: string): AdSeedEntry[] {
  const accountNames = new Set(SAMPLE_PEOPLE.map((p) => adAccountName(p.uid)));
  if (accountNames.size !== SAMPLE_PEOPLE.length)
    throw new Error('two sample uids share their first 20 characters: sAMAccountName would clash');
  return [
    ...[AD_PEOPLE_BASE, AD_GROUPS_BASE, AD_DISABLED_OU, AD_SERVICES_OU].map((dn) => ({
      dn,
      attributes: { objectClass: ['top', 'organizationalUnit'], ou: dn.slice(3, dn.indexOf(',')) },
    })),
    { ...user('offboard', { description: 'offboard service account' }), dn: AD_SERVICE_DN, password: servicePassword },
    ...SAMPLE_PEOPLE.map((person) =>
      user(person.uid, {
        givenName: person.givenName,
        sn: person.sn,
        displayName: `${person.givenName} ${person.sn}`,
        mail: person.email,
        employeeID: person.employeeId,
        employeeType: person.employmentType,
        // A linked attribute: the manager's entry comes first in SAMPLE_PEOPLE, so it exists by now.
        ...(person.managerEmployeeId ? { manager: adPersonDn(samplePerson(person.managerEmployeeId).uid) } : {}),
      }),
    ),
    // A data-entry mistake the connector must refuse to guess on: two accounts with one HR id.
    ...['a', 'b'].map((twin) => user(`twin.${twin}`, { sn: 'Twin', employeeID: DUPLICATED_EMPLOYEE_ID })),
    ...SAMPLE_GROUPS.map((group) => ({
      dn: adGroupDn(group.cn),
      attributes: {
        objectClass: ['top', 'group'],
        sAMAccountName: group.cn,
        description: `sample ${group.kind}${group.privileged ? ' (privileged)' : ''}`,
        member: SAMPLE_PEOPLE.filter((p) => p.groups.includes(group.cn)).map((p) => adPersonDn(p.uid)),
      },
    })),
  ];
}
