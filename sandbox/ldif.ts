import { SAMPLE_DOMAIN, SAMPLE_GROUPS, SAMPLE_PEOPLE, samplePerson } from './org.js';

export const LDAP_PEOPLE_BASE = `ou=people,${SAMPLE_DOMAIN.baseDn}`;
export const LDAP_GROUPS_BASE = `ou=groups,${SAMPLE_DOMAIN.baseDn}`;
export const LDAP_SERVICE_DN = `cn=offboard,ou=services,${SAMPLE_DOMAIN.baseDn}`;
export const LDAP_POLICY_DN = `cn=default,ou=policies,${SAMPLE_DOMAIN.baseDn}`;
export const personDn = (uid: string) => `uid=${uid},${LDAP_PEOPLE_BASE}`;
export const groupDn = (cn: string) => `cn=${cn},${LDAP_GROUPS_BASE}`;

/** Every sample person's password in the sandbox directory (used to prove that a lock works). */
export const DUPLICATED_EMPLOYEE_ID = 'E9999';

export const SAMPLE_USER_PASSWORD = 'sandbox-user-password';

/** The seed directory: organisation, password policy, service account, people and groups. */
export function sampleLdif(servicePassword: string): string {
  const base = SAMPLE_DOMAIN.baseDn;
  const entries: string[] = [
    `dn: ${base}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Org`,
    ...['people', 'groups', 'services', 'policies'].map(
      (ou) => `dn: ou=${ou},${base}\nobjectClass: organizationalUnit\nou: ${ou}`,
    ),
    // pwdLockout: TRUE makes ppolicy honour pwdAccountLockedTime, which is how login is disabled.
    `dn: ${LDAP_POLICY_DN}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE`,
    `dn: ${LDAP_SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: offboard\nuserPassword: ${servicePassword}`,
  ];
  for (const [i, person] of SAMPLE_PEOPLE.entries()) {
    entries.push(
      [
        `dn: ${personDn(person.uid)}`,
        'objectClass: inetOrgPerson',
        'objectClass: posixAccount',
        `uid: ${person.uid}`,
        `cn: ${person.givenName} ${person.sn}`,
        `givenName: ${person.givenName}`,
        `sn: ${person.sn}`,
        `mail: ${person.email}`,
        `employeeNumber: ${person.employeeId}`,
        `employeeType: ${person.employmentType}`,
        `uidNumber: ${10000 + i}`,
        `gidNumber: ${10000 + i}`,
        `homeDirectory: /home/${person.uid}`,
        `userPassword: ${SAMPLE_USER_PASSWORD}`,
        ...(person.managerEmployeeId ? [`manager: ${personDn(samplePerson(person.managerEmployeeId).uid)}`] : []),
      ].join('\n'),
    );
  }
  // A data-entry mistake the connector must refuse to guess on: two entries with one HR id.
  for (const twin of ['a', 'b']) {
    entries.push(
      `dn: ${personDn(`twin.${twin}`)}\nobjectClass: inetOrgPerson\nuid: twin.${twin}\ncn: Twin ${twin}\nsn: Twin\nemployeeNumber: ${DUPLICATED_EMPLOYEE_ID}`,
    );
  }
  for (const group of SAMPLE_GROUPS) {
    const members = SAMPLE_PEOPLE.filter((p) => p.groups.includes(group.cn));
    const lines = [`dn: ${groupDn(group.cn)}`, `cn: ${group.cn}`];
    if (group.kind === 'posixGroup')
      lines.push(
        'objectClass: posixGroup',
        `gidNumber: ${group.gidNumber}`,
        ...members.map((m) => `memberUid: ${m.uid}`),
      );
    if (group.kind === 'groupOfNames')
      lines.push('objectClass: groupOfNames', ...members.map((m) => `member: ${personDn(m.uid)}`));
    if (group.kind === 'groupOfUniqueNames')
      lines.push('objectClass: groupOfUniqueNames', ...members.map((m) => `uniqueMember: ${personDn(m.uid)}`));
    entries.push(lines.join('\n'));
  }
  return entries.join('\n\n') + '\n';
}
