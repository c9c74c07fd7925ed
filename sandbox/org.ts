/**
 * The sample organisation every local target is seeded from (slapd now; the SaaS stand-ins and
 * PostgreSQL roles later), so that one person has access everywhere. Fictitious people only.
 */
export interface SamplePerson {
  employeeId: string;
  uid: string;
  givenName: string;
  sn: string;
  email: string;
  employmentType: 'employee' | 'contractor';
  /** Group cns this person belongs to. */
  groups: string[];
  /** Their manager's employee id (the directory's `manager` attribute); the keeper has none. */
  managerEmployeeId?: string;
}

export interface SampleGroup {
  cn: string;
  kind: 'groupOfNames' | 'groupOfUniqueNames' | 'posixGroup';
  gidNumber: number;
  privileged: boolean;
  /** Managed by another team: the offboard service account may read it but not change it. */
  restricted?: boolean;
}

export const SAMPLE_DOMAIN = { baseDn: 'dc=example,dc=org', emailDomain: 'example.org' };

export const SAMPLE_GROUPS: SampleGroup[] = [
  { cn: 'engineering', kind: 'groupOfNames', gidNumber: 5001, privileged: false },
  { cn: 'finance', kind: 'groupOfNames', gidNumber: 5002, privileged: false },
  { cn: 'domain-admins', kind: 'groupOfNames', gidNumber: 5003, privileged: true },
  { cn: 'vpn-users', kind: 'groupOfUniqueNames', gidNumber: 5004, privileged: false },
  { cn: 'prod-access', kind: 'groupOfUniqueNames', gidNumber: 5005, privileged: true },
  { cn: 'developers', kind: 'posixGroup', gidNumber: 5006, privileged: false },
  { cn: 'sudoers', kind: 'posixGroup', gidNumber: 5007, privileged: true },
  { cn: 'hr-records', kind: 'groupOfNames', gidNumber: 5008, privileged: false, restricted: true },
];

const FIRST = [
  'Ada',
  'Alan',
  'Barbara',
  'Claude',
  'Dorothy',
  'Edsger',
  'Frances',
  'Grace',
  'Hedy',
  'John',
  'Katherine',
  'Leslie',
  'Margaret',
  'Niklaus',
  'Radia',
  'Ken',
  'Sophie',
  'Tim',
  'Whitfield',
  'Yukihiro',
];
const LAST = [
  'Lovelace',
  'Turing',
  'Liskov',
  'Shannon',
  'Vaughan',
  'Dijkstra',
  'Allen',
  'Hopper',
  'Lamarr',
  'Backus',
  'Johnson',
  'Lamport',
  'Hamilton',
  'Wirth',
  'Perlman',
  'Thompson',
  'Wilson',
  'Berners-Lee',
  'Diffie',
  'Matsumoto',
];

/**
 * E1000 (the keeper) is in every group and is never offboarded, so no group is ever left empty.
 * E1001..E1060 each hold one group of every kind plus, for every third person, privileged access;
 * E1008 is also in hr-records, which offboard may not change (a revocation that needs a person).
 * The keeper manages everyone else, and is told of their offboardings.
 */
export const SAMPLE_PEOPLE: SamplePerson[] = [
  {
    employeeId: 'E1000',
    uid: 'keeper',
    givenName: 'Kim',
    sn: 'Keeper',
    email: 'keeper@example.org',
    employmentType: 'employee',
    groups: SAMPLE_GROUPS.map((g) => g.cn),
  },
  ...Array.from({ length: 60 }, (_, i): SamplePerson => {
    const givenName = FIRST[i % FIRST.length]!;
    const sn = LAST[(i * 7) % LAST.length]!;
    const uid = `${givenName}.${sn}.${i + 1}`.toLowerCase();
    const groups = [i % 2 ? 'engineering' : 'finance', 'vpn-users', 'developers'];
    if (i % 3 === 0) groups.push('domain-admins', 'prod-access', 'sudoers');
    if (i === 7) groups.push('hr-records');
    return {
      employeeId: `E${1001 + i}`,
      uid,
      givenName,
      sn,
      email: `${uid}@example.org`,
      employmentType: i % 5 === 4 ? 'contractor' : 'employee',
      groups,
      managerEmployeeId: 'E1000',
    };
  }),
];

export const samplePerson = (employeeId: string): SamplePerson => {
  const person = SAMPLE_PEOPLE.find((p) => p.employeeId === employeeId);
  if (!person) throw new Error(`no sample person ${employeeId}`);
  return person;
};
