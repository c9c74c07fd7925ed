/**
 * The sample organisation's PostgreSQL roles (a data warehouse): a login role per person named
 * by their employee id, group roles mirroring their directory groups, and a role that receives
 * the objects of deleted roles.
 */
import type pg from 'pg';
import { SAMPLE_PEOPLE } from './org.js';

export const WAREHOUSE_GROUPS: Record<string, string> = {
  engineering: 'analysts',
  finance: 'finance_readers',
  'domain-admins': 'warehouse_admins',
  'prod-access': 'pii_readers',
};
export const WAREHOUSE_ARCHIVE_ROLE = 'offboard_archive';

export async function seedWarehouseRoles(client: pg.Client | pg.Pool): Promise<void> {
  const exists = await client.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [WAREHOUSE_ARCHIVE_ROLE]);
  if (exists.rowCount) return;
  const statements = [
    `CREATE ROLE ${WAREHOUSE_ARCHIVE_ROLE} NOLOGIN`,
    ...Object.values(WAREHOUSE_GROUPS).map((group) => `CREATE ROLE ${group} NOLOGIN`),
  ];
  for (const person of SAMPLE_PEOPLE) {
    const role = person.employeeId.toLowerCase();
    statements.push(`CREATE ROLE ${role} LOGIN`);
    for (const group of person.groups) {
      const warehouseGroup = WAREHOUSE_GROUPS[group];
      if (warehouseGroup) statements.push(`GRANT ${warehouseGroup} TO ${role}`);
    }
  }
  for (const statement of statements) await client.query(statement);
}
