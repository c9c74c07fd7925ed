/**
 * Apps with no API (a legacy payroll tool, a vendor portal): every revoking action becomes a task
 * for the app's owner. The connector answers with a non-retryable `manual_task` error, which the
 * workflow turns into a manual task, reminds about and escalates when overdue; the operator closes
 * it with `skip` and the owner's confirmation as the reason. Discovery cannot see into the app, so
 * it reports a presumed account and the verification sweep leaves manual systems out.
 */
import { z } from 'zod';
import type { Action, Discovery } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

export const manualSystemSchema = z.object({
  type: z.literal('manual'),
  /** The application, as its owner knows it. */
  app: z.string().min(1),
  /** Who removes access by hand: a team, a mailbox, a queue. */
  owner: z.string().min(1),
});
export type ManualSystemConfig = z.infer<typeof manualSystemSchema>;

export const manualConnector = defineConnector({
  type: 'manual',
  configSchema: manualSystemSchema,
  secretFields: [],
  capabilities: {
    actions: ['disable_login', 'enable_login', 'delete_account'],
    discover: false,
    verify: false,
    check: false,
    manualTasks: true,
  },
  create: (config, { system }) => createManualConnector(system, config),
});

const TASKS: Partial<Record<Action['kind'], string>> = {
  disable_login: 'disable the login of',
  delete_account: 'delete the account of',
  enable_login: 're-enable the login of',
};

export function createManualConnector(system: string, config: ManualSystemConfig): Connector {
  return {
    system,
    async discover(): Promise<Discovery> {
      return {
        system,
        account: { id: `manual:${system}`, disabled: false },
        entitlements: [],
        credentials: [],
        manual: true,
      };
    },
    async apply(action: Action, subject: Subject): Promise<ApplyResult> {
      const task = TASKS[action.kind];
      if (!task)
        return { outcome: 'not_applicable', details: { reason: `${config.app} is handled by its owner as a whole` } };
      throw new ConnectorError(
        `manual task for ${config.owner}: ${task} ${subject.employeeId} in ${config.app}; when the owner confirms, close it with \`offboard skip ${subject.employeeId} --action ${action.id} --reason "<who confirmed, when>"\``,
        false,
        'manual_task',
      );
    },
    async close() {},
  };
}
