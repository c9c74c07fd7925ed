/**
 * `offboard`: the operator's command line. Starts offboardings, shows their status, steers them
 * (hold, release, expedite, cancel, retry, skip) and verifies the audit chain.
 *
 * Exit codes: 0 done; 1 refused or invalid input; 2 usage error; 3 Temporal or the database
 * unreachable; 4 the audit trail is broken or (evidence) not verified.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parse as parseCsv } from 'csv-parse/sync';
import { randomUUID } from 'node:crypto';
import { Command, CommanderError, Option } from 'commander';
import type { Client } from '@temporalio/client';
import { createAuditStore } from '../activities/audit.js';
import { describeDatabase, createPool, databaseTarget } from '../workers/database.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { Policy } from '../model/policy.js';
import { describeIssues, offboardingRequestSchema, workflowIdFor } from '../model/request.js';
import { loadIntakeConfig } from '../workers/config.js';
import {
  buildEvidence,
  evidenceSchema,
  evidenceToCsv,
  evidenceToHtml,
  evidenceToJson,
  INTEGRITY_WORDS,
  type Evidence,
} from './evidence.js';
import { anchorFor, verifyEvidenceOffline } from './evidence-anchor.js';
import { historiesOfOffboardings } from './audit-history.js';
import {
  checkpointSettings,
  fileCheckpointStore,
  keyIdOf,
  loadPublicKey,
  publicKeyPem,
} from '../activities/audit-checkpoints.js';
import {
  checkCheckpoints,
  chainFindings,
  compareWithHistories,
  NOTICE_KINDS,
} from '../activities/audit-verification.js';
import {
  CommandRefusedError,
  InvalidRequestError,
  connectClient,
  readStatus,
  sendCommand,
  startOffboarding,
  type CallInFlight,
  type CommandName,
} from './temporal.js';
import { EXECUTION_STATES, listFiltersSchema, listOffboardings } from './offboardings.js';

class UnreachableError extends Error {}
class ChainBrokenError extends Error {}

const operator = () => process.env.OFFBOARD_OPERATOR ?? `cli:${userInfo().username}`;

/**
 * The worker's policy and employee-id rule, from the same config file (OFFBOARD_CONFIG, else
 * ./offboard.config.yaml, else the defaults), read before any command runs: ids are written the
 * way the worker and the API write them, and a request the worker could not plan exits 1.
 */
let policy: Policy | undefined;
const workerPolicy = (): Policy => (policy ??= loadIntakeConfig().policy);

function print(json: boolean, value: unknown, human: () => string) {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  let client: Client;
  try {
    client = await connectClient();
  } catch (err) {
    throw new UnreachableError((err as Error).message);
  }
  try {
    return await work(client);
  } finally {
    await client.connection.close();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const secondsSince = (iso: string, nowMs: number) => `${Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000))} s`;

/** Per system: its stage, what it is doing and for how long, and its calls with their attempt. */
function pipelineRows(status: OffboardingStatus, calls: CallInFlight[], nowMs: number): string[][] {
  return Object.entries(status.pipelines ?? {}).map(([system, p]) => {
    const inFlight = p.calls.map(({ activityId, call, since }) => {
      const attempt = calls.find((c) => c.activityId === activityId)?.attempt ?? 1;
      return `${call}, attempt ${attempt}, ${secondsSince(since, nowMs)}`;
    });
    const next = p.nextStage ? `${p.nextStage.name} at ${p.nextStage.dueAt}` : '';
    return [system, p.stage ?? '-', p.doing, secondsSince(p.since, nowMs), inFlight.join('; '), next];
  });
}

export function formatStatus(
  workflowId: string,
  status: OffboardingStatus,
  calls: CallInFlight[] = [],
  nowMs = Date.now(),
): string {
  const lines = [
    `${workflowId}: ${status.phase}${status.playbook ? ` (${status.playbook}, ${status.mode})` : ''}`,
    `  effective     ${status.effectiveAt}`,
    `  SLA deadline  ${status.slaDeadline ?? '-'}`,
    `  stage         ${status.stage ?? '-'}${status.nextStage ? `   next: ${status.nextStage.name} at ${status.nextStage.dueAt}` : ''}`,
    `  holds         ${status.holds.length === 0 ? 'none' : status.holds.map((h) => `${h.by}: ${h.reason}${h.until ? ` (until ${h.until})` : ''}`).join('; ')}`,
  ];
  if (status.expedited) lines.push(`  expedited     by ${status.expedited.by}: ${status.expedited.reason}`);
  if (status.cancelled) lines.push(`  cancelled     by ${status.cancelled.by}: ${status.cancelled.reason}`);
  // Workflows started before later HR events were handled have no such list.
  for (const later of status.laterRequests ?? [])
    lines.push(`  later event   ${later.requestId} (${later.reason ?? later.trigger}): ${later.outcome}: ${later.why}`);
  lines.push(
    `  systems       ${status.systems.map((system) => (system in status.accounts && status.accounts[system] === null ? `${system} (no account found)` : system)).join(', ') || '-'}`,
  );
  // Runs from before person_not_found have no such field.
  const nowhere = status.foundInNoSystem;
  if (nowhere)
    lines.push(
      `  FOUND IN NO SYSTEM (${nowhere.systems.join(', ')}${nowhere.unreachable.length ? `; not asked: ${nowhere.unreachable.join(', ')}` : ''}) at ${nowhere.stage}, since ${nowhere.since}: check the employee id with HR`,
    );
  // What discovery found per system; before any stage has begun, that is the pre-flight's finding.
  const accounts = Object.entries(status.accounts ?? {});
  if (accounts.length > 0) {
    const ahead = !status.stages.some((stage) => stage.startedAt);
    lines.push(
      `  accounts      ${ahead ? 'found ahead of time (pre-flight), before the first stage' : 'found when each stage began'}:`,
      table(accounts.map(([system, account]) => [system, account ?? 'none found'])).replace(
        /^/gm,
        '                  ',
      ),
    );
  }
  const pipelines = pipelineRows(status, calls, nowMs);
  if (pipelines.length > 0) {
    lines.push(
      '',
      table([['SYSTEM', 'STAGE', 'DOING', 'FOR', 'CALLS IN FLIGHT', 'NEXT'], ...pipelines]).replace(/^/gm, '  '),
    );
  }
  if (status.actions.length > 0) {
    lines.push(
      '',
      table([
        ['STATE', 'STAGE', 'SYSTEM', 'ACTION', 'TARGET', 'ATTEMPTS'],
        ...status.actions.map((a) => [a.state, a.stage, a.system, a.kind, a.target?.id ?? '', String(a.attempts)]),
      ]).replace(/^/gm, '  '),
    );
  }
  const open = status.manualTasks.filter((t) => t.state === 'open');
  if (open.length > 0) {
    lines.push('', `  MANUAL TASKS (resolve with \`offboard retry|skip ${status.employeeId} --action <id>\`):`);
    for (const task of open) lines.push(`    ${task.id}`, `      ${task.description}: ${task.error}`);
  }
  return lines.join('\n');
}

function buildProgram(): Command {
  const program = new Command('offboard')
    .description("Revoke a departing person's access everywhere, on time, with proof.")
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', () => void workerPolicy());

  const startCommand = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .requiredOption('--employee <id>', 'the HR employee id (never a name or email)')
      .option('--effective <iso>', 'when access must end (ISO 8601); default now')
      .option('--email <email>', 'work email, for systems keyed by email')
      .option('--manager-email <email>', "the manager to notify; default: the directory's manager entry")
      .addOption(
        new Option('--employment-type <type>', 'employee, contractor or vendor')
          .choices(['employee', 'contractor', 'vendor'])
          .default('employee'),
      )
      .option('--request-id <id>', 'the HR event id; default a new id')
      .option('--json', 'print JSON');

  const start = async (options: Record<string, string | boolean | undefined>, fields: Record<string, unknown>) => {
    const request = {
      requestId: options.requestId ?? `cli-${randomUUID()}`,
      subject: { employeeId: options.employee, ...(options.email ? { email: options.email } : {}) },
      ...(options.managerEmail ? { manager: { email: options.managerEmail } } : {}),
      employmentType: options.employmentType,
      effectiveAt: options.effective ?? new Date().toISOString(),
      requestedBy: operator(),
      ...fields,
    };
    // Validate before connecting: bad input is refused even when Temporal is down.
    const parsed = offboardingRequestSchema.safeParse(request);
    if (!parsed.success) throw new InvalidRequestError(describeIssues(parsed.error));
    const result = await withClient((client) => startOffboarding(client, parsed.data, { policy: workerPolicy() }));
    print(Boolean(options.json), result, () =>
      result.started
        ? `started ${result.workflowId} (run ${result.runId})`
        : `${result.outcome} ${result.workflowId}: an offboarding for this person is already running (started by request ${result.startedBy}); ${result.detail}`,
    );
  };

  program
    .command('terminate')
    .description('start the offboarding of someone who leaves (or of everyone in --file)')
    .option('--employee <id>', 'the HR employee id (never a name or email)')
    .addOption(new Option('--reason <reason>', 'why they leave').choices(['voluntary', 'involuntary', 'security']))
    .option('--effective <iso>', 'when access must end (ISO 8601); default now')
    .option('--email <email>', 'work email, for systems keyed by email')
    .option('--manager-email <email>', "the manager to notify; default: the directory's manager entry")
    .addOption(
      new Option('--employment-type <type>', 'employee, contractor or vendor')
        .choices(['employee', 'contractor', 'vendor'])
        .default('employee'),
    )
    .option('--request-id <id>', 'the HR event id; default a new id')
    .option(
      '--file <csv>',
      'bulk: a CSV with columns employee_id, reason[, effective_at, email, manager_email, employment_type, request_id]',
    )
    .option('--json', 'print JSON')
    .action(async (options) => {
      if (options.file) {
        if (options.employee) throw new CommanderError(2, 'usage', 'give either --file or --employee, not both');
        return terminateFromFile(options.file, Boolean(options.json));
      }
      if (!options.employee || !options.reason)
        throw new CommanderError(2, 'usage', 'terminate needs --employee and --reason (or --file)');
      return start(options, { trigger: 'termination', reason: options.reason });
    });
  startCommand('contract-end', 'start the offboarding of a contractor or vendor whose contract ends').action(
    (options) => start(options, { trigger: 'contract_end' }),
  );
  startCommand('role-change', "remove what a person's new role does not grant")
    .requiredOption('--new-role <role>', 'the role they move into (a key of policy.roles)')
    .action((options) => start(options, { trigger: 'role_change', newRole: options.newRole }));

  program
    .command('list')
    .description('list offboardings, newest first (Temporal visibility)')
    .addOption(new Option('--state <state>', 'execution state').choices(Object.keys(EXECUTION_STATES)))
    .option('--stage <stage>', 'e.g. waiting, held, revoke, completed')
    .addOption(new Option('--mode <mode>').choices(['immediate', 'staged', 'pending']))
    .option('--held', 'only those on hold')
    .option('--limit <n>', 'at most this many (1-1000)', '100')
    .option('--json', 'print JSON')
    .action(
      async (options: {
        state?: string;
        stage?: string;
        mode?: string;
        held?: boolean;
        limit: string;
        json?: boolean;
      }) => {
        // The API's filter schema, so that both check filters the same way.
        const parsed = listFiltersSchema.safeParse({
          state: options.state,
          stage: options.stage,
          mode: options.mode,
          held: options.held ? 'true' : undefined,
          limit: options.limit,
        });
        if (!parsed.success) throw new InvalidRequestError(describeIssues(parsed.error));
        const rows = await withClient((client) => listOffboardings(client, parsed.data));
        print(Boolean(options.json), rows, () =>
          rows.length === 0
            ? 'no offboardings match'
            : table([
                ['WORKFLOW', 'STATE', 'STAGE', 'MODE', 'HELD', 'EFFECTIVE'],
                ...rows.map((r) => [
                  r.workflowId,
                  r.state,
                  r.stage ?? '',
                  r.mode ?? '',
                  r.held ? 'yes' : '',
                  r.effectiveAt ?? '',
                ]),
              ]),
        );
      },
    );

  program
    .command('status <employeeId>')
    .description('show an offboarding: stage, holds, every action and open manual tasks')
    .option('--json', 'print JSON')
    .action(async (employeeId: string, options: { json?: boolean }) => {
      const workflowId = workflowIdFor(employeeId);
      const answer = await withClient((client) => readStatus(client, employeeId));
      if ('queued' in answer) {
        const { queued } = answer;
        return print(
          Boolean(options.json),
          queued,
          () =>
            `${workflowId}: queued (started ${queued.startedAt}${queued.requestId ? ` by request ${queued.requestId}` : ''})\n` +
            `  no worker has run it yet, so it has no status to show; a worker on task queue "${queued.taskQueue}" takes it up in turn`,
        );
      }
      const { status, calls } = answer;
      print(Boolean(options.json), { ...status, callsInFlight: calls }, () => formatStatus(workflowId, status, calls));
    });

  const command = (name: CommandName, description: string) =>
    program
      .command(`${name} <employeeId>`)
      .description(description)
      .option('--by <name>', 'who decides this (default $OFFBOARD_OPERATOR or cli:<user>)')
      .option('--json', 'print JSON');
  const send = async (
    name: CommandName,
    employeeId: string,
    options: Record<string, string | undefined>,
    fields: Record<string, unknown>,
  ) => {
    const payload = {
      by: options.by ?? operator(),
      ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)),
    };
    const result = await withClient((client) => sendCommand(client, employeeId, name, payload));
    print(
      Boolean(options.json),
      { workflowId: workflowIdFor(employeeId), command: name, result },
      () => `${workflowIdFor(employeeId)}: ${result}`,
    );
  };

  command('hold', 'pause before the next stage')
    .requiredOption('--reason <text>', 'why (recorded in the audit)')
    .option('--until <iso>', 'lift the hold by itself at this time')
    .action((id, o) => send('hold', id, o, { reason: o.reason, until: o.until }));
  command('release', 'lift every hold')
    .option('--reason <text>', 'why (recorded in the audit)')
    .action((id, o) => send('release', id, o, { reason: o.reason }));
  command('expedite', 'lift holds and run every remaining stage now')
    .requiredOption('--reason <text>', 'why (recorded in the audit)')
    .action((id, o) => send('expedite', id, o, { reason: o.reason }));
  command('cancel', 'stop the offboarding and re-enable logins it disabled (rescinded termination)')
    .requiredOption('--reason <text>', 'why (recorded in the audit)')
    .action((id, o) => send('cancel', id, o, { reason: o.reason }));
  command('retry', "run a manual task's action again")
    .requiredOption('--action <id>', 'the manual task id shown by `offboard status`')
    .action((id, o) => send('retry', id, o, { actionId: o.action }));
  command('skip', 'close a manual task without running it (e.g. done by hand)')
    .requiredOption('--action <id>', 'the manual task id shown by `offboard status`')
    .requiredOption('--reason <text>', 'why (recorded in the audit)')
    .action((id, o) => send('skip', id, o, { actionId: o.action, reason: o.reason }));

  program
    .command('evidence <employeeId> [file]')
    .description(
      'the evidence report of an offboarding, from the audit log alone (for auditors); `evidence verify FILE` checks a JSON report offline',
    )
    .addOption(
      new Option('--format <format>', 'html (printable), csv (one row per action) or json')
        .choices(['html', 'csv', 'json'])
        .default('html'),
    )
    .option('--out <file>', 'write to this file instead of standard output')
    .option(
      '--public-key <file>',
      'the audit signing public key (PEM); default from OFFBOARD_AUDIT_PUBLIC_KEY_FILE or the local key',
    )
    .action(
      async (
        employeeId: string,
        file: string | undefined,
        options: { format: 'html' | 'csv' | 'json'; out?: string; publicKey?: string },
      ) => {
        if (employeeId === 'verify' && file !== undefined) return verifyEvidenceFile(file, options.publicKey);
        if (file !== undefined)
          throw new CommandRefusedError(
            `unexpected argument "${file}": evidence <employeeId>, or evidence verify FILE`,
          );
        const offboardingId = workflowIdFor(employeeId);
        const target = databaseTarget();
        const pool = createPool(target);
        try {
          const store = createAuditStore(pool);
          const settings = checkpointSettings();
          const [events, chain, check] = await Promise.all([
            store.eventsFor(offboardingId),
            store.verify(),
            checkCheckpoints(
              store,
              fileCheckpointStore(settings.checkpointsFile),
              loadPublicKey(settings, options.publicKey),
            ),
          ]).catch((err: Error) => {
            throw new UnreachableError(`cannot read the audit log at ${describeDatabase(target.url)}: ${err.message}`);
          });
          if (events.length === 0) throw new CommandRefusedError(`no audit events for ${offboardingId}`);
          const evidence = buildEvidence(events, chain, { anchor: await anchorFor(store, check, events) });
          const rendered =
            options.format === 'html'
              ? evidenceToHtml(evidence)
              : options.format === 'csv'
                ? evidenceToCsv(evidence)
                : evidenceToJson(evidence);
          const { integrity } = evidence.auditTrail;
          if (options.out) writeFileSync(options.out, rendered);
          else process.stdout.write(rendered);
          process.stderr.write(
            `${options.out ? `wrote ${options.out}: ` : ''}${INTEGRITY_WORDS[integrity.verdict]}; SLA ${evidence.sla.verdict}\n${integrity.verdict === 'verified' ? '' : `${[integrity.statement, ...integrity.problems].join('\n')}\n`}`,
          );
          // A report that is not verified is never a success, whatever the SLA says.
          if (integrity.verdict !== 'verified') throw new ChainBrokenError('');
        } finally {
          await pool.end();
        }
      },
    );

  const audit = program.command('audit').description('the audit log');
  audit
    .command('verify')
    .description(
      "recompute the hash chain, check it against the signed checkpoints, and (--against temporal) against every offboarding's history",
    )
    .option('--json', 'print JSON')
    .addOption(
      new Option('--against <source>', 'also compare with the receipts each workflow keeps').choices(['temporal']),
    )
    .option(
      '--public-key <file>',
      'the audit signing public key (PEM); default from OFFBOARD_AUDIT_PUBLIC_KEY_FILE or the local key',
    )
    .action(async (options: { json?: boolean; against?: 'temporal'; publicKey?: string }) => {
      const target = databaseTarget();
      const pool = createPool(target);
      try {
        const store = createAuditStore(pool);
        const settings = checkpointSettings();
        const checkpoints = fileCheckpointStore(settings.checkpointsFile);
        const publicKey = loadPublicKey(settings, options.publicKey);
        const [chain, check] = await Promise.all([
          store.verify(),
          checkCheckpoints(store, checkpoints, publicKey),
        ]).catch((err: Error) => {
          throw new UnreachableError(`cannot read the audit log at ${describeDatabase(target.url)}: ${err.message}`);
        });
        const findings = [...chainFindings(chain), ...check.findings];
        let temporal: { runsChecked: number; receiptsChecked: number } | undefined;
        if (options.against === 'temporal') {
          const histories = await withClient((client) => historiesOfOffboardings(client));
          const compared = await compareWithHistories(store, histories, { notFromWorkflows: NOT_FROM_WORKFLOWS });
          findings.push(...compared.findings);
          temporal = { runsChecked: compared.runsChecked, receiptsChecked: compared.receiptsChecked };
        }
        const failures = findings.filter((f) => !NOTICE_KINDS.has(f.kind));
        const result = {
          ok: failures.length === 0,
          chain,
          checkpoints: {
            file: checkpoints.location,
            kept: check.checkpoints,
            validSignatures: check.validSignatures,
            latest: check.latest,
            publicKeyId: publicKey ? keyIdOf(publicKey) : null,
          },
          ...(temporal ? { temporal } : {}),
          findings,
        };
        print(Boolean(options.json), result, () =>
          [
            chain.ok
              ? `audit chain intact: ${chain.rows} rows verified`
              : `audit chain BROKEN at seq ${chain.firstBroken!.seq} (id ${chain.firstBroken!.id}): ${chain.firstBroken!.problem}; ${chain.rows} rows before it verified`,
            `checkpoints: ${check.validSignatures} of ${check.checkpoints} validly signed${publicKey ? ` by key ${keyIdOf(publicKey)}` : ''} in ${checkpoints.location}${check.latest ? `; latest seq ${check.latest.seq} at ${check.latest.at} matches the table` : ''}`,
            ...(temporal
              ? [`temporal: ${temporal.runsChecked} runs, ${temporal.receiptsChecked} receipts compared`]
              : []),
            ...findings.map((f) => `${NOTICE_KINDS.has(f.kind) ? 'note' : 'FAIL'} ${f.kind}: ${f.message}`),
            result.ok ? 'audit trail: no tampering found' : `audit trail: ${failures.length} problem(s) found`,
          ].join('\n'),
        );
        if (!result.ok) throw new ChainBrokenError('');
      } finally {
        await pool.end();
      }
    });
  audit
    .command('public-key')
    .description('print the public key that verifies the audit checkpoints (PEM), for auditors')
    .action(() => {
      const key = loadPublicKey(checkpointSettings());
      if (!key)
        throw new CommandRefusedError(
          'no audit signing key here: set OFFBOARD_AUDIT_SIGNING_KEY_FILE or OFFBOARD_AUDIT_PUBLIC_KEY_FILE (the worker creates a development key under .data on first start)',
        );
      process.stdout.write(`${publicKeyPem(key)}# key id ${keyIdOf(key)}\n`);
    });
  return program;
}

/**
 * Bulk terminations from a CSV: one offboarding per row, started (or joined) one after another
 * with a progress line, then a summary of what started, joined or failed, with each failure's row.
 */
async function terminateFromFile(path: string, json: boolean): Promise<void> {
  let rows: Record<string, string>[];
  try {
    rows = parseCsv(readFileSync(path), {
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      skip_empty_lines: true,
      trim: true,
    });
  } catch (err) {
    throw new InvalidRequestError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const missing = ['employee_id', 'reason'].filter((column) => rows.length > 0 && !(column in rows[0]!));
  if (rows.length === 0 || missing.length > 0)
    throw new InvalidRequestError(
      `${path}: ${rows.length === 0 ? 'no rows' : `missing column(s) ${missing.join(', ')}`}; expected employee_id, reason[, effective_at, email, manager_email, employment_type, request_id]`,
    );
  const results: {
    row: number;
    employeeId: string;
    outcome: 'started' | 'joined' | 'duplicate' | 'superseded' | 'failed';
    workflowId?: string;
    detail?: string;
    error?: string;
  }[] = [];
  const progress = (done: number) => {
    if (json) return;
    const width = 30;
    const filled = Math.round((done / rows.length) * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${rows.length}`;
    process.stderr.write(
      process.stderr.isTTY ? `\r${line}` : done === rows.length || done % 50 === 0 ? `${line}\n` : '',
    );
  };
  await withClient(async (client) => {
    for (const [index, row] of rows.entries()) {
      const rowNumber = index + 2; // the header is row 1
      const request = {
        requestId: row.request_id || `csv-${randomUUID()}`,
        subject: { employeeId: row.employee_id, ...(row.email ? { email: row.email } : {}) },
        ...(row.manager_email ? { manager: { email: row.manager_email } } : {}),
        trigger: 'termination',
        reason: row.reason,
        employmentType: row.employment_type || 'employee',
        effectiveAt: row.effective_at || new Date().toISOString(),
        requestedBy: operator(),
      };
      const parsed = offboardingRequestSchema.safeParse(request);
      if (!parsed.success) {
        results.push({
          row: rowNumber,
          employeeId: row.employee_id ?? '',
          outcome: 'failed',
          error: describeIssues(parsed.error).replaceAll('\n', '; '),
        });
      } else {
        try {
          const started = await startOffboarding(client, parsed.data, { policy: workerPolicy() });
          results.push({
            row: rowNumber,
            employeeId: parsed.data.subject.employeeId,
            outcome: started.duplicate ? 'duplicate' : started.outcome,
            workflowId: started.workflowId,
            ...(started.detail ? { detail: started.detail } : {}),
          });
        } catch (err) {
          results.push({
            row: rowNumber,
            employeeId: parsed.data.subject.employeeId,
            outcome: 'failed',
            error: (err as Error).message,
          });
        }
      }
      progress(index + 1);
    }
  });
  if (!json && process.stderr.isTTY) process.stderr.write('\n');
  const count = (outcome: string) => results.filter((r) => r.outcome === outcome).length;
  const summary = {
    started: count('started'),
    joined: count('joined'),
    duplicate: count('duplicate'),
    superseded: count('superseded'),
    failed: count('failed'),
    results,
  };
  print(json, summary, () =>
    [
      `${summary.started} started, ${summary.joined} joined (already running), ${summary.duplicate} duplicate (this request started it already), ${summary.superseded} superseded a running plan, ${summary.failed} failed`,
      ...results
        .filter((r) => r.outcome === 'failed')
        .map((r) => `  row ${r.row} (${r.employeeId || 'no employee_id'}): ${r.error}`),
    ].join('\n'),
  );
  if (summary.failed > 0) throw new PartialFailureError(`${summary.failed} of ${rows.length} rows failed`);
}

class PartialFailureError extends Error {}

/** Rows that no workflow writes (the HR webhook's refusals): checked by the chain and the checkpoints only. */
const NOT_FROM_WORKFLOWS: ReadonlySet<string> = new Set(['hr-webhook']);

/** `offboard evidence verify FILE`: a JSON report checked offline with the public key; exit 4 unless it verifies. */
async function verifyEvidenceFile(path: string, publicKeyFile: string | undefined): Promise<void> {
  let evidence: Evidence;
  try {
    evidence = evidenceSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new CommandRefusedError(
      `${path} is not a JSON evidence report (${(err as Error).message.split('\n')[0]}): write one with offboard evidence <employeeId> --format json`,
    );
  }
  const key = loadPublicKey(checkpointSettings(), publicKeyFile);
  if (!key)
    throw new CommandRefusedError('no public key: pass --public-key FILE (offboard audit public-key prints it)');
  const result = verifyEvidenceOffline(evidence, key);
  process.stdout.write(
    result.ok
      ? `VERIFIED: ${path} (${evidence.offboardingId}, rows seq ${evidence.auditTrail.firstSeq} to ${evidence.auditTrail.lastSeq}) is covered by the checkpoint of ${evidence.auditTrail.anchor!.checkpoint.at} signed by key ${keyIdOf(key)}, and says what its rows say\n`
      : `NOT VERIFIED: ${path}\n${result.problems.map((p) => `  ${p}`).join('\n')}\n`,
  );
  if (!result.ok) throw new ChainBrokenError('');
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof ChainBrokenError) return 4;
    if (err instanceof PartialFailureError) return 1;
    const message = (err as Error).message;
    if (err instanceof InvalidRequestError)
      process.stderr.write(`offboard: invalid request:\n${message.replace(/^/gm, '  ')}\n`);
    else process.stderr.write(`offboard: ${message}\n`);
    if (err instanceof UnreachableError) return 3;
    if (err instanceof CommandRefusedError || err instanceof InvalidRequestError) return 1;
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
