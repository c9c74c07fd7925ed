/**
 * Client-side helpers shared by the CLI (and later the HTTP API): connect, start an offboarding,
 * address a running one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ApplicationFailure,
  Client,
  Connection,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { planningProblems, type PlanningProblem } from '../model/plan.js';
import type { Policy } from '../model/policy.js';
import proto from '@temporalio/proto';
import { offboardingRequestSchema, workflowIdFor, describeIssues, type OffboardingRequest } from '../model/request.js';
import type { UpdateDefinition } from '@temporalio/common';
import {
  cancelUpdate,
  expediteUpdate,
  holdUpdate,
  releaseUpdate,
  retryUpdate,
  skipUpdate,
  statusQuery,
  supersedeUpdate,
  OFFBOARDING_CANCELLED,
  OFFBOARDING_TASK_QUEUE,
  OFFBOARDING_WORKFLOW_TYPE,
  type OffboardingStatus,
} from '../workflows/messages.js';
import { priorityKeyFor } from '../model/urgency.js';
import type { offboarding } from '../workflows/offboarding.js';
import { dataConverterFor, keyringFromEnv, PAYLOAD_KEYS_ENV } from '../workers/codec.js';
import { EffectiveAtKey, EmployeeIdKey, HeldKey, ModeKey, StageKey } from '../workflows/search-attributes.js';

/** Where `npm start` keeps its payload keys, so the CLI in another shell can read them too. */
const LOCAL_PAYLOAD_KEYS = fileURLToPath(new URL('../.data/payload-keys', import.meta.url));

export async function connectClient(env: NodeJS.ProcessEnv = process.env): Promise<Client> {
  const address = env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  // The key file npm start makes belongs to npm start's own server: use it only when talking to that.
  const local = address === `127.0.0.1:${env.OFFBOARD_TEMPORAL_PORT ?? 7233}` && existsSync(LOCAL_PAYLOAD_KEYS);
  const keys = env[PAYLOAD_KEYS_ENV] ?? (local ? readFileSync(LOCAL_PAYLOAD_KEYS, 'utf8').trim() : undefined);
  // Before connecting: a key problem must not be reported as "cannot reach Temporal".
  const dataConverter = dataConverterFor(keyringFromEnv({ [PAYLOAD_KEYS_ENV]: keys }));
  try {
    const connection = await Connection.connect({ address, connectTimeout: '5s' });
    return new Client({ connection, namespace: env.TEMPORAL_NAMESPACE ?? 'default', dataConverter });
  } catch (err) {
    throw new Error(
      `cannot reach Temporal at ${address}: ${(err as Error).message}. Is \`npm start\` running, or TEMPORAL_ADDRESS set?`,
    );
  }
}

/** A request refused before anything was started; `errors` names each field (for a 400). */
export class InvalidRequestError extends Error {
  constructor(
    message: string,
    readonly errors: PlanningProblem[] = [],
  ) {
    super(message);
  }
}

/**
 * Refuses a request the worker could not plan under `policy` (the worker's own, from the same
 * config file): an unknown `newRole`, a playbook without stages. Nothing is started.
 */
export function checkPlannable(request: OffboardingRequest, policy: Policy): void {
  const problems = planningProblems(request, policy);
  if (problems.length > 0)
    throw new InvalidRequestError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'), problems);
}

export interface StartResult {
  workflowId: string;
  runId: string;
  /** false when an offboarding for this person was already running and the request joined it. */
  started: boolean;
  /** The request id of the run that is in progress. */
  startedBy: string | null;
  /**
   * `started`; `superseded` when this request joined a running offboarding and replaced its plan
   * (it goes further or sooner); `joined` when the running plan already covers it.
   */
  outcome: 'started' | 'joined' | 'superseded';
  /** For a join: what the running offboarding made of this request. */
  detail: string | null;
  /**
   * True when the running offboarding was started by this very request (same request id): a
   * re-sent event or a re-run CSV. Nothing was sent to it; `outcome` is `joined`.
   */
  duplicate?: boolean;
}

export interface StartOptions {
  taskQueue?: string;
  /** false where the server has no offboard search attributes (Temporal's time-skipping test server). */
  searchAttributes?: boolean;
  /**
   * The worker's policy (the same config file): a request it could not plan is refused here,
   * before anything starts. The CLI and the API always pass it.
   */
  policy?: Policy;
}

/**
 * Starts the offboarding for one person, or joins the one already running (USE_EXISTING): an HR
 * system that sends the same event twice gets one offboarding. A different request for a running
 * offboarding is handed to it (Update `supersede`), which replaces its plan when the request goes
 * further or sooner (a security termination during a notice period) and records it otherwise.
 */
export async function startOffboarding(
  client: Client,
  input: unknown,
  options: StartOptions = {},
): Promise<StartResult> {
  const parsed = offboardingRequestSchema.safeParse(input);
  if (!parsed.success) throw new InvalidRequestError(describeIssues(parsed.error));
  if (options.policy) checkPlannable(parsed.data, options.policy);
  // When the run it joined ends before the Update reaches it (completed, or cancelled by a
  // rescind), this request is a new offboarding, not a no-op: start again. The next start makes a
  // run of its own unless yet another request raced it, so a few rounds always settle.
  for (let round = 0; round < 3; round += 1) {
    const result = await startOrHandOver(client, parsed.data, options);
    if (result !== 'ended') return result;
  }
  throw new Error(
    `the offboarding of ${parsed.data.subject.employeeId} kept ending as this request arrived; send it again`,
  );
}

async function startOrHandOver(
  client: Client,
  request: OffboardingRequest,
  options: StartOptions,
): Promise<StartResult | 'ended'> {
  const { taskQueue = OFFBOARDING_TASK_QUEUE, searchAttributes = true } = options;
  const workflowId = workflowIdFor(request.subject.employeeId);
  // The start call cannot tell "started" from "this request had started it before" (both leave
  // our request id in the memo), so a running offboarding of this very request is looked for first.
  const running = await client.workflow
    .getHandle(workflowId)
    .describe()
    .catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    });
  if (
    running?.status.name === 'RUNNING' &&
    (running.memo as { requestId?: string } | undefined)?.requestId === request.requestId
  ) {
    return {
      workflowId,
      runId: running.runId,
      started: false,
      startedBy: request.requestId,
      outcome: 'joined',
      detail: `duplicate: request ${request.requestId} started this offboarding already; nothing changed`,
      duplicate: true,
    };
  }
  const handle = await client.workflow.start<typeof offboarding>(OFFBOARDING_WORKFLOW_TYPE, {
    workflowId,
    taskQueue,
    args: [request],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    priority: { priorityKey: priorityKeyFor(request) },
    ...(searchAttributes
      ? {
          typedSearchAttributes: [
            { key: EmployeeIdKey, value: request.subject.employeeId },
            { key: StageKey, value: 'planning' },
            { key: ModeKey, value: 'pending' },
            { key: HeldKey, value: false },
            { key: EffectiveAtKey, value: new Date(request.effectiveAt) },
          ],
        }
      : {}),
    memo: { requestId: request.requestId },
    // Shown in the Temporal UI's list; identifiers only (no names or emails).
    staticSummary: `Offboarding ${request.subject.employeeId}: ${request.trigger}${request.reason ? ` (${request.reason})` : ''}, effective ${request.effectiveAt}`,
  });
  // The server does not say whether it started or joined; the memo names the request that started it.
  const description = await handle.describe();
  const startedBy = (description.memo as { requestId?: string } | undefined)?.requestId ?? null;
  const joined = { workflowId, runId: description.runId, started: false, startedBy };
  if (startedBy === request.requestId) return { ...joined, started: true, outcome: 'started', detail: null };
  try {
    const answer = await handle.executeUpdate(supersedeUpdate, { args: [{ by: request.requestedBy, request }] });
    // Runs from before per-system pipelines answer "superseded: why" or "joined: why".
    const result =
      typeof answer === 'string'
        ? ({ outcome: answer.startsWith('superseded') ? 'superseded' : 'joined', why: answer } as const)
        : answer;
    return {
      ...joined,
      outcome: result.outcome,
      detail: `${result.outcome}: ${result.why.replace(/^(superseded|joined): /, '')}`,
    };
  } catch (err) {
    const running = await handle.describe().then(
      (d) => d.status.name === 'RUNNING',
      () => true,
    );
    if (!running) return 'ended';
    // Cancelled and still re-enabling what it disabled: wait for it to end, then start anew.
    const cancelled =
      err instanceof WorkflowUpdateFailedError &&
      ((err.cause instanceof ApplicationFailure && err.cause.type === OFFBOARDING_CANCELLED) ||
        /has already been cancelled/.test(err.cause?.message ?? '')); // runs from before per-system pipelines
    if (cancelled) {
      await handle.result().catch(() => undefined);
      return 'ended';
    }
    // Refused while it runs (this request is already part of it): the join stands, with the reason.
    if (err instanceof WorkflowUpdateFailedError)
      return { ...joined, outcome: 'joined', detail: err.cause?.message ?? err.message };
    throw err;
  }
}

const COMMAND_UPDATES = {
  hold: holdUpdate,
  release: releaseUpdate,
  expedite: expediteUpdate,
  cancel: cancelUpdate,
  retry: retryUpdate,
  skip: skipUpdate,
} as const;
export type CommandName = keyof typeof COMMAND_UPDATES;

export class CommandRefusedError extends Error {}

/** The person has no offboarding (none was ever started, or its history was deleted). */
export class NoSuchOffboardingError extends CommandRefusedError {
  constructor(readonly employeeId: string) {
    super(`no offboarding for ${employeeId} (workflow ${workflowIdFor(employeeId)} not found)`);
    this.name = 'NoSuchOffboardingError';
  }
}

/** A call into a target system in flight, as Temporal sees it (the workflow cannot see attempts). */
export interface CallInFlight {
  activityId: string;
  attempt: number;
  /** When its current attempt started (ISO), or when it was scheduled if not started yet. */
  since: string | null;
}

/**
 * A run that no worker has taken up yet (a backlog is being worked, or no worker runs): its
 * workflow code has never run, so it cannot answer a query, and one sent would wait for a
 * worker (30 s and a timeout). What Temporal's description already says is shown instead.
 */
export interface QueuedOffboarding {
  workflowId: string;
  runId: string;
  phase: 'queued';
  /** When the run was started (ISO). */
  startedAt: string;
  /** The request that started it (the memo). */
  requestId: string | null;
  /** The task queue whose worker has yet to take it. */
  taskQueue: string;
}

/**
 * Events a run has before its first workflow task completes: started, task scheduled, task
 * started. Only once a task has completed is there workflow state to answer a query from.
 */
const EVENTS_BEFORE_FIRST_TASK_COMPLETES = 3;
const { EventType } = proto.temporal.api.enums.v1;

/** A short history (signals before the first task, a timed-out first task) is read to be sure. */
const HISTORY_CHECKED_UP_TO = 50;

async function firstTaskCompleted(client: Client, description: WorkflowExecutionDescription): Promise<boolean> {
  if (description.historyLength <= EVENTS_BEFORE_FIRST_TASK_COMPLETES) return false;
  if (description.historyLength > HISTORY_CHECKED_UP_TO) return true;
  // Raw, so that no payload is decoded: only the event types are looked at.
  const page = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId: description.workflowId, runId: description.runId },
    maximumPageSize: HISTORY_CHECKED_UP_TO,
  });
  return (page.history?.events ?? []).some((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
}

/**
 * An offboarding's status query, and the system calls in flight with their attempt from
 * Temporal's description, so an operator reads "slack: discover, attempt 2, 40 s". A run whose
 * first workflow task has not completed answers `queued` from the description, at once.
 */
export async function readStatus(
  client: Client,
  employeeId: string,
): Promise<{ status: OffboardingStatus; calls: CallInFlight[] } | { queued: QueuedOffboarding }> {
  const handle = client.workflow.getHandle(workflowIdFor(employeeId));
  const description = await handle.describe().catch((err: unknown) => {
    if (err instanceof WorkflowNotFoundError) throw new NoSuchOffboardingError(employeeId);
    throw err;
  });
  if (description.status.name === 'RUNNING' && !(await firstTaskCompleted(client, description))) {
    return {
      queued: {
        workflowId: description.workflowId,
        runId: description.runId,
        phase: 'queued',
        startedAt: description.startTime.toISOString(),
        requestId: (description.memo as { requestId?: string } | undefined)?.requestId ?? null,
        taskQueue: description.taskQueue,
      },
    };
  }
  const status = await handle.query(statusQuery);
  const toIso = (time: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
    time?.seconds != null
      ? new Date(Number(time.seconds) * 1000 + Math.floor((time.nanos ?? 0) / 1e6)).toISOString()
      : null;
  const calls = (description.raw.pendingActivities ?? []).map((activity) => ({
    activityId: activity.activityId ?? '',
    attempt: activity.attempt ?? 1,
    since: toIso(activity.lastStartedTime) ?? toIso(activity.scheduledTime),
  }));
  return { status, calls };
}

/**
 * Sends an operator command as an Update, so that a refusal comes back at once with the
 * workflow's reason (e.g. "release: there is no hold to release").
 */
export async function sendCommand(
  client: Client,
  employeeId: string,
  name: CommandName,
  command: Record<string, unknown>,
): Promise<string> {
  const workflowId = workflowIdFor(employeeId);
  const handle = client.workflow.getHandle(workflowId);
  try {
    // The workflow validates the command (who, why, whether the state allows it) and answers.
    // One definition per command; the command's shape is the workflow's to check, so it goes as is.
    const update = COMMAND_UPDATES[name] as UpdateDefinition<string, [Record<string, unknown>]>;
    return await handle.executeUpdate(update, { args: [command] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new CommandRefusedError(err.cause?.message ?? err.message);
    // An Update cannot reach a closed workflow; say whether it finished or never existed.
    // Only "not found" means there is none: any other failure (Temporal away) is passed on as it is.
    const closed = await handle.describe().then(
      (d) => (d.status.name === 'RUNNING' ? undefined : d.status.name),
      (describeError: unknown) => {
        if (describeError instanceof WorkflowNotFoundError) return null;
        throw err;
      },
    );
    if (closed === null) throw new NoSuchOffboardingError(employeeId);
    if (closed)
      throw new CommandRefusedError(
        `${name}: the offboarding of ${employeeId} has already finished (${closed.toLowerCase()})`,
      );
    throw err;
  }
}
