/**
 * FROZEN: the workflow as it ran before the `per-system-pipelines` patch (2026-12-01), kept so
 * that offboardings started under it finish as they began and their recorded histories replay.
 * Each stage here is a barrier across all systems. Do not change it; delete it once no run
 * started before that patch is open (then deprecate the patch in ../offboarding/versions.ts).
 *
 * The offboarding workflow: one per person (workflow id `offboarding-<employeeId>`). It waits for
 * the effective time, maps access in every system, runs the plan's stages on durable timers, and
 * records an audit event for every step. Operators steer it with hold/release/expedite/cancel and
 * resolve manual tasks with retry/skip. Deterministic code only: all I/O is in activities.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import type { Notification } from '../../activities/notify.js';
import type { AuditEvent } from '../../model/audit.js';
import type {
  CancelCommand,
  ExpediteCommand,
  HoldCommand,
  ReleaseCommand,
  RetryCommand,
  SkipCommand,
  SupersedeCommand,
} from '../../model/commands.js';
import { describeLeftover } from '../../model/leftovers.js';
import {
  actionsForStage,
  leftoversAfterStage as typedLeftoversAfterStage,
  supersedingRequest,
  supersession,
  type Action,
  type Discovery,
  type Plan,
  type PlannedStage,
} from '../../model/plan.js';
import type { OffboardingRequest } from '../../model/request.js';

/** This version wrote leftovers as sentences (`system: what`), and groups them by that prefix. */
const leftoversAfterStage = (...args: Parameters<typeof typedLeftoversAfterStage>) =>
  typedLeftoversAfterStage(...args).map(describeLeftover);
import {
  cancelSignal,
  cancelUpdate,
  expediteSignal,
  expediteUpdate,
  holdSignal,
  holdUpdate,
  releaseSignal,
  releaseUpdate,
  retrySignal,
  retryUpdate,
  skipSignal,
  skipUpdate,
  statusQuery,
  supersedeUpdate,
  type ActionStatus,
  type ManualTask,
  type OffboardingResult,
  type OffboardingStatus,
} from '../messages.js';
import { EmployeeIdKey, HeldKey, ModeKey, StageKey } from '../search-attributes.js';

const setup = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10, maximumInterval: '1 minute' },
});
// The audit log must not lose an event: keep retrying for as long as the database is away.
const { recordAudit } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

type CommandName = 'hold' | 'release' | 'expedite' | 'cancel' | 'retry' | 'skip';

export async function stageBarrierOffboarding(request: OffboardingRequest): Promise<OffboardingResult> {
  const info = workflowInfo();
  const now = () => new Date(Date.now()).toISOString();

  const status: OffboardingStatus = {
    employeeId: request.subject.employeeId,
    requestId: request.requestId,
    laterRequests: [],
    phase: 'planning',
    playbook: null,
    mode: null,
    effectiveAt: request.effectiveAt,
    slaDeadline: null,
    stage: null,
    nextStage: null,
    stages: [],
    holds: [],
    expedited: null,
    cancelled: null,
    systems: [],
    accounts: {},
    actions: [],
    manualTasks: [],
  };
  // Bumped by every command, so that waits re-evaluate holds, expedite and cancel.
  let commandVersion = 0;
  // Set once the first plan is made; a later HR event waits for it.
  let planned = false;

  // ---- audit: one event per step, with an id that is the same on every replay ----
  let auditStep = 0;
  const pendingAudit: Promise<void>[] = [];
  function audit(
    event: Omit<AuditEvent, 'id' | 'occurredAt' | 'offboardingId' | 'employeeId' | 'system' | 'outcome'> &
      Partial<Pick<AuditEvent, 'system' | 'outcome'>>,
  ) {
    auditStep += 1;
    pendingAudit.push(
      recordAudit({
        id: `${info.workflowId}/${info.runId}/${auditStep}`,
        occurredAt: now(),
        offboardingId: info.workflowId,
        employeeId: request.subject.employeeId,
        system: event.system ?? null,
        outcome: event.outcome ?? null,
        action: event.action,
        actor: event.actor,
        details: event.details,
      }),
    );
  }

  // Notifications must not hold the offboarding up: a failed one is recorded and the work goes on.
  const { notify } = proxyActivities<Activities>({
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 5, maximumInterval: '1 minute' },
  });
  // Manager notifications, delivery in order and telling the start first came with this patch;
  // histories from before it replay without them.
  const notifiesManager = patched('manager-notifications');

  // One after another per audience, so that nobody reads "held" before "started".
  const delivered: Record<'it' | 'manager', Promise<void>> = { it: Promise.resolve(), manager: Promise.resolve() };
  function send(event: Notification['event'], text: string, manager?: { email: string }) {
    const audience = manager ? 'manager' : 'it';
    const notification: Notification = {
      event,
      employeeId: request.subject.employeeId,
      workflowId: info.workflowId,
      text: `${info.workflowId}: ${text}`,
      audience,
      ...(manager ? { managerEmail: manager.email } : {}),
    };
    const deliver = () =>
      notify(notification).then(
        () => undefined,
        (err: ActivityFailure) =>
          audit({
            action: 'notification_failed',
            actor: 'workflow',
            outcome: 'failed',
            details: { event, audience, error: err.cause?.message ?? err.message },
          }),
      );
    delivered[audience] = notifiesManager ? delivered[audience].then(deliver) : deliver();
    pendingAudit.push(delivered[audience]);
  }

  // The manager hears of the start, holds, a task gone overdue, and the end. Their email comes
  // from HR or, failing that, from the directories at the first discovery: what is said before
  // then waits for it, and an offboarding whose manager nobody knows records that once.
  const manager = {
    email: request.manager?.email,
    lookedUp: request.manager?.email !== undefined,
    waiting: [] as [Notification['event'], string][],
  };
  function tellManager(event: Notification['event'], text: string) {
    if (!notifiesManager) return;
    if (manager.email) send(event, text, { email: manager.email });
    else if (!manager.lookedUp) manager.waiting.push([event, text]);
  }
  /** Takes the manager's email from the directories (when they agree on one), then says what waited. */
  function learnManager(found: Discovery[]) {
    if (!notifiesManager || manager.lookedUp) return;
    manager.lookedUp = true;
    const emails = [
      ...new Set(found.map((d) => d.identity?.managerEmail?.toLowerCase()).filter((e): e is string => Boolean(e))),
    ];
    if (emails.length === 1) {
      manager.email = emails[0];
      audit({
        action: 'identity_correlated',
        actor: 'workflow',
        details: { field: 'managerEmail', from: found.filter((d) => d.identity?.managerEmail).map((d) => d.system) },
      });
    }
    sayWhatWaitedForManager();
  }
  function sayWhatWaitedForManager() {
    const waiting = manager.waiting.splice(0);
    if (manager.email) {
      for (const [event, text] of waiting) send(event, text, { email: manager.email });
    } else if (notifiesManager) {
      audit({
        action: 'manager_unknown',
        actor: 'workflow',
        outcome: 'failed',
        details: {
          reason: 'HR sent no manager email and no directory names a manager with one: the manager is not notified',
          unsent: waiting.map(([event]) => event),
        },
      });
    }
  }

  const FOR_THE_MANAGER: ReadonlySet<Notification['event']> = new Set([
    'started',
    'held',
    'superseded',
    'completed',
    'cancelled',
  ]);
  // A command that arrives while the plan is still being made (a hold within a second of the
  // start) is told after the start itself.
  const beforeStartTold: [Notification['event'], string, boolean][] = [];
  let startTold = false;
  /** Tells the IT channel, and the manager too for the events that concern them. */
  function tell(event: Notification['event'], text: string, alsoManager = FOR_THE_MANAGER.has(event)) {
    if (notifiesManager && !startTold && event !== 'started') {
      beforeStartTold.push([event, text, alsoManager]);
      return;
    }
    send(event, text);
    if (alsoManager) tellManager(event, text);
    if (event === 'started') {
      startTold = true;
      for (const told of beforeStartTold.splice(0)) tell(...told);
    }
  }

  // Started without offboard's search attributes (a server that lacks them): keep none.
  const searchAttributesEnabled = info.typedSearchAttributes.get(EmployeeIdKey) !== undefined;
  function publishSearchAttributes() {
    if (!searchAttributesEnabled) return;
    const held = status.holds.length > 0;
    upsertSearchAttributes([
      {
        key: StageKey,
        value:
          status.phase === 'running' || status.phase === 'restoring' ? (status.stage ?? status.phase) : status.phase,
      },
      { key: HeldKey, value: held },
      ...(status.mode ? [{ key: ModeKey, value: status.mode }] : []),
    ]);
  }

  const finished = () => status.phase === 'completed' || status.phase === 'cancelled';
  const openTask = (id: string) => status.manualTasks.find((task) => task.id === id && task.state === 'open');

  // ---- commands: validated the same way for signals and Updates ----
  function refusal(name: CommandName, command: { by?: unknown } & Record<string, unknown>): string | undefined {
    if (typeof command?.by !== 'string' || command.by.length === 0) return `${name}: "by" (who sends it) is required`;
    const needsReason = name === 'hold' || name === 'expedite' || name === 'cancel' || name === 'skip';
    if (needsReason && (typeof command.reason !== 'string' || command.reason.length === 0))
      return `${name}: "reason" is required`;
    if (finished() || status.cancelled)
      return `${name}: the offboarding has already ${status.cancelled ? 'been cancelled' : 'completed'}`;
    switch (name) {
      case 'hold':
        if (
          command.until !== undefined &&
          !(typeof command.until === 'string' && Date.parse(command.until) > Date.now())
        ) {
          return 'hold: "until" must be a time in the future (ISO 8601)';
        }
        return status.expedited ? 'hold: the offboarding was expedited; holds no longer apply' : undefined;
      case 'release':
        return status.holds.length === 0 ? 'release: there is no hold to release' : undefined;
      case 'expedite':
        return status.expedited ? 'expedite: already expedited' : undefined;
      case 'cancel':
        return undefined;
      case 'retry':
      case 'skip':
        return openTask(String(command.actionId))
          ? undefined
          : `${name}: no open manual task "${String(command.actionId)}" (open: ${
              status.manualTasks
                .filter((t) => t.state === 'open')
                .map((t) => t.id)
                .join(', ') || 'none'
            })`;
    }
  }

  const apply: { [K in CommandName]: (command: never) => string } = {
    hold: (command: HoldCommand) => {
      status.holds.push({ by: command.by, reason: command.reason, until: command.until, placedAt: now() });
      audit({
        action: 'hold_placed',
        actor: command.by,
        details: { reason: command.reason, until: command.until ?? null },
      });
      tell('held', `held by ${command.by}${command.until ? ` until ${command.until}` : ''}: ${command.reason}`);
      return command.until ? `held until ${command.until}` : 'held until released';
    },
    release: (command: ReleaseCommand) => {
      const released = status.holds.length;
      status.holds = [];
      audit({
        action: 'hold_released',
        actor: command.by,
        details: { reason: command.reason ?? null, holdsReleased: released },
      });
      return 'released';
    },
    expedite: (command: ExpediteCommand) => {
      status.expedited = { by: command.by, reason: command.reason, at: now() };
      const lifted = status.holds.length;
      status.holds = [];
      audit({ action: 'expedited', actor: command.by, details: { reason: command.reason, holdsLifted: lifted } });
      return 'expedited: every remaining stage runs now';
    },
    cancel: (command: CancelCommand) => {
      status.cancelled = { by: command.by, reason: command.reason, at: now() };
      audit({ action: 'cancel_requested', actor: command.by, details: { reason: command.reason } });
      return 'cancelled: what was only disabled will be re-enabled';
    },
    retry: (command: RetryCommand) => {
      const task = openTask(command.actionId)!;
      task.state = 'retrying';
      task.resolvedBy = command.by;
      audit({ action: 'manual_task_retried', actor: command.by, system: task.system, details: { taskId: task.id } });
      return `retrying ${task.id}`;
    },
    skip: (command: SkipCommand) => {
      const task = openTask(command.actionId)!;
      task.state = 'skipped';
      task.resolvedBy = command.by;
      audit({
        action: 'manual_task_skipped',
        actor: command.by,
        system: task.system,
        details: { taskId: task.id, reason: command.reason },
      });
      return `skipped ${task.id}`;
    },
  };

  function run(name: CommandName, command: never): string {
    const result = apply[name](command);
    commandVersion += 1;
    publishSearchAttributes();
    return result;
  }

  const commands = [
    ['hold', holdSignal, holdUpdate],
    ['release', releaseSignal, releaseUpdate],
    ['expedite', expediteSignal, expediteUpdate],
    ['cancel', cancelSignal, cancelUpdate],
    ['retry', retrySignal, retryUpdate],
    ['skip', skipSignal, skipUpdate],
  ] as const;
  for (const [name, signal, update] of commands) {
    setHandler(signal, (command: Record<string, unknown>) => {
      const refused = refusal(name, command);
      if (refused) {
        // A signal cannot answer its sender: the refusal goes to the log and the audit trail.
        log.warn('command refused', { command: name, refused });
        audit({
          action: 'command_refused',
          actor: typeof command?.by === 'string' ? command.by : 'unknown',
          details: { command: name, reason: refused },
        });
        return;
      }
      run(name, command as never);
    });
    setHandler(update, (command: Record<string, unknown>) => run(name, command as never), {
      validator: (command: Record<string, unknown>) => {
        const refused = refusal(name, command);
        if (refused) throw new Error(refused);
      },
    });
  }
  setHandler(statusQuery, () => status);

  // ---- a later HR event for the same person ----
  // The request the current plan was made from (a superseding event replaces it).
  let planRequest = request;
  setHandler(
    supersedeUpdate,
    async (command: SupersedeCommand) => {
      await condition(() => planned); // an event that arrives while the first plan is made waits for it
      const receivedAt = now();
      const { supersedes, why } = supersession(planRequest, command.request);
      const record = {
        requestId: command.request.requestId,
        trigger: command.request.trigger,
        reason: command.request.reason ?? null,
        effectiveAt: command.request.effectiveAt,
        receivedAt,
        why,
      };
      /** Records the event as joined, with why it changes nothing. */
      const joined = (reason: string) => {
        status.laterRequests.push({ ...record, outcome: 'joined', why: reason });
        audit({
          action: 'hr_event_joined',
          actor: command.by,
          outcome: 'no_change',
          details: {
            requestId: record.requestId,
            trigger: record.trigger,
            reason: record.reason,
            effectiveAt: record.effectiveAt,
            why: reason,
          },
        });
        return `joined: ${reason}`;
      };
      if (finished() || status.cancelled) return joined('the offboarding has already ended');
      if (!supersedes) return joined(why);
      const next = supersedingRequest(planRequest, command.request);
      const replacement = await setup.makePlan(next);
      if (finished() || status.cancelled)
        return joined(`${why}, but the offboarding ended while the new plan was made`);
      // Another event may have replaced the plan while this one's was made: compare again, so that
      // of two events arriving together the further-reaching one stands.
      const again = supersession(planRequest, command.request);
      if (!again.supersedes) return joined(again.why);
      replacePlan(next, replacement);
      status.laterRequests.push({ ...record, outcome: 'superseded' });
      audit({
        action: 'plan_replaced',
        actor: command.by,
        details: {
          requestId: next.requestId,
          trigger: next.trigger,
          reason: next.reason ?? null,
          effectiveAt: next.effectiveAt,
          why,
          playbook: plan.playbook,
          mode: plan.mode,
          slaDeadline: plan.slaDeadline,
          stages: remaining.map((st) => ({ name: st.name, dueAt: st.dueAt })),
          systems: status.systems,
        },
      });
      tell(
        'superseded',
        `${why}: now ${plan.playbook} (${plan.mode}), next ${remaining[0] ? `${remaining[0].name} due ${remaining[0].dueAt}` : 'nothing'}`,
      );
      return `superseded: ${why}`;
    },
    {
      validator: (command: SupersedeCommand) => {
        if (typeof command?.by !== 'string' || command.by.length === 0)
          throw new Error('supersede: "by" (who sends it) is required');
        if (command.request?.subject?.employeeId !== request.subject.employeeId)
          throw new Error(
            `supersede: the request is for ${String(command.request?.subject?.employeeId)}, not ${request.subject.employeeId}`,
          );
        const seen = [request.requestId, ...status.laterRequests.map((r) => r.requestId)];
        if (seen.includes(command.request.requestId))
          throw new Error(`supersede: request ${command.request.requestId} is already part of this offboarding`);
        if (finished() || status.cancelled)
          throw new Error(
            `supersede: the offboarding has already ${status.cancelled ? 'been cancelled' : 'completed'}`,
          );
      },
    },
  );

  /**
   * Puts the stages of a new plan in place of those not started yet. Stages already run stay in
   * the status; a new stage whose name was used before gets a suffix, so its action ids are new.
   */
  function replacePlan(next: OffboardingRequest, replacement: Plan) {
    const used = new Set(status.stages.filter((st) => st.startedAt).map((st) => st.name));
    const renamed = replacement.stages.map((st) => {
      if (!used.has(st.name)) return st;
      let n = 2;
      while (used.has(`${st.name}-${n}`)) n += 1;
      return { ...st, name: `${st.name}-${n}` };
    });
    // The tighter deadline holds: a replan never loosens the SLA already promised.
    const slaDeadline =
      plan.slaDeadline && Date.parse(plan.slaDeadline) < Date.parse(replacement.slaDeadline)
        ? plan.slaDeadline
        : replacement.slaDeadline;
    plan = { ...replacement, slaDeadline, stages: renamed };
    planRequest = next;
    remaining = [...renamed];
    if (next.subject.email && !subject.email) subject = { ...subject, email: next.subject.email };
    if (next.manager?.email && !manager.email) {
      // HR names the manager now: what waited for the first discovery goes to them at once.
      manager.email = next.manager.email;
      manager.lookedUp = true;
      sayWhatWaitedForManager();
    }
    status.playbook = plan.playbook;
    status.mode = plan.mode;
    status.slaDeadline = plan.slaDeadline;
    status.effectiveAt = plan.effectiveAt;
    status.stages = [
      ...status.stages.filter((st) => st.startedAt),
      ...renamed.map((st) => ({ name: st.name, dueAt: st.dueAt })),
    ];
    planVersion += 1;
    commandVersion += 1; // wakes a wait for the old plan's next stage
    publishSearchAttributes();
  }

  // ---- start ----
  audit({
    action: 'offboarding_started',
    actor: request.requestedBy,
    details: {
      requestId: request.requestId,
      trigger: request.trigger,
      reason: request.reason ?? null,
      employmentType: request.employmentType,
      effectiveAt: request.effectiveAt,
      newRole: request.newRole ?? null,
    },
  });
  let plan = await setup.makePlan(request);
  // The stages not started yet, and a count of plan replacements (a wait for a replaced stage ends).
  let remaining: PlannedStage[] = [...plan.stages];
  let planVersion = 0;
  status.playbook = plan.playbook;
  status.mode = plan.mode;
  status.slaDeadline = plan.slaDeadline;
  status.stages = plan.stages.map((stage) => ({ name: stage.name, dueAt: stage.dueAt }));
  status.systems = await setup.configuredSystems();
  tell(
    'started',
    `${plan.playbook} offboarding (${plan.mode}), effective ${plan.effectiveAt}, requested by ${request.requestedBy}`,
  );
  audit({
    action: 'plan_made',
    actor: 'workflow',
    details: {
      playbook: plan.playbook,
      mode: plan.mode,
      slaDeadline: plan.slaDeadline,
      stages: plan.stages.map((s) => ({ name: s.name, dueAt: s.dueAt })),
      systems: status.systems,
    },
  });
  planned = true;

  const retry = {
    initialInterval: plan.retry.initialIntervalMs,
    maximumInterval: plan.retry.maximumIntervalMs,
    backoffCoefficient: plan.retry.backoffCoefficient,
    maximumAttempts: plan.retry.maximumAttempts,
  };
  const { discover, applyAction } = proxyActivities<Activities>({ startToCloseTimeout: '5 minutes', retry });

  /** Waits until a stage is due and no hold is in force; expedite and cancel end the wait at once. */
  async function waitUntilDue(stage: PlannedStage) {
    const dueMs = Date.parse(stage.dueAt);
    const version = planVersion;
    for (;;) {
      if (status.cancelled || status.expedited || planVersion !== version) return;
      const nowMs = Date.now();
      const expired = status.holds.filter((hold) => hold.until && Date.parse(hold.until) <= nowMs);
      if (expired.length > 0) {
        status.holds = status.holds.filter((hold) => !expired.includes(hold));
        audit({ action: 'hold_expired', actor: 'workflow', details: { holdsExpired: expired.length } });
      }
      const held = status.holds.length > 0;
      if (!held && nowMs >= dueMs) return;
      status.phase = held ? 'held' : 'waiting';
      status.nextStage = { name: stage.name, dueAt: stage.dueAt };
      publishSearchAttributes();
      const wakeAt = held
        ? Math.min(...status.holds.map((hold) => (hold.until ? Date.parse(hold.until) : Infinity)))
        : dueMs;
      const seen = commandVersion;
      await condition(() => commandVersion !== seen, Number.isFinite(wakeAt) ? Math.max(wakeAt - nowMs, 1) : undefined);
    }
  }

  /**
   * Opens (or reopens) a manual task and waits for an operator's retry or skip, reminding the
   * channel every `remindEvery` and escalating once it is past `dueWithin`.
   */
  async function awaitOperator(
    taskId: string,
    system: string | null,
    description: string,
    error: string,
    ignoreCancel: boolean,
  ): Promise<'retry' | 'skip' | 'cancelled'> {
    const openedAtMs = Date.now();
    const fields = {
      error,
      openedAt: now(),
      dueAt: new Date(openedAtMs + plan.manualTasks.dueWithinMs).toISOString(),
      reminders: 0,
      state: 'open' as const,
    };
    const existing = status.manualTasks.find((t) => t.id === taskId);
    const task: ManualTask = existing
      ? Object.assign(existing, fields)
      : { id: taskId, system, description, ...fields };
    if (!existing) status.manualTasks.push(task);
    audit({
      action: 'manual_task_opened',
      actor: 'workflow',
      system,
      outcome: 'escalated',
      details: { taskId, description, error, dueAt: task.dueAt },
    });
    tell('manual_task', `needs a person: ${description} — ${error} (resolve with retry or skip ${taskId})`);
    log.warn('manual task opened', { taskId, system });
    const settled = () => task.state !== 'open' || (!ignoreCancel && status.cancelled !== null);
    while (!(await condition(settled, plan.manualTasks.remindEveryMs))) {
      task.reminders += 1;
      const overdue = Date.now() >= Date.parse(task.dueAt);
      audit({
        action: overdue ? 'manual_task_overdue' : 'manual_task_reminder',
        actor: 'workflow',
        system,
        outcome: 'escalated',
        details: { taskId, reminders: task.reminders, dueAt: task.dueAt },
      });
      // The manager hears of a task once, when it goes overdue: the escalation, not every reminder.
      const firstOverdue = overdue && Date.now() - plan.manualTasks.remindEveryMs < Date.parse(task.dueAt);
      tell(
        overdue ? 'overdue' : 'reminder',
        `${overdue ? 'OVERDUE since ' + task.dueAt : 'still open'}: ${description} (task ${taskId})`,
        firstOverdue,
      );
    }
    if (task.state === 'skipped') return 'skip';
    return task.state === 'retrying' ? 'retry' : 'cancelled';
  }

  // The audit says when an operator's retry worked (patched: older histories have no such row,
  // and the evidence report infers it for them).
  const auditsResolutions = patched('manual-task-resolved');
  function resolveTask(taskId: string) {
    const task = status.manualTasks.find((t) => t.id === taskId && t.state === 'retrying');
    if (!task) return;
    task.state = 'resolved';
    if (auditsResolutions)
      audit({
        action: 'manual_task_resolved',
        actor: 'workflow',
        system: task.system,
        outcome: 'resolved',
        details: { taskId, how: 'retried' },
      });
  }

  /**
   * Runs one unit of work; when it fails for good (retries exhausted or not retryable), opens a
   * manual task and waits for an operator's retry or skip. Returns undefined when skipped.
   */
  async function withOperatorFallback<T>(
    taskId: string,
    system: string | null,
    description: string,
    work: () => Promise<T>,
    ignoreCancel = false,
  ): Promise<T | undefined> {
    for (;;) {
      try {
        const result = await work();
        resolveTask(taskId);
        return result;
      } catch (err) {
        if (!(err instanceof ActivityFailure)) throw err;
        const decision = await awaitOperator(
          taskId,
          system,
          description,
          err.cause?.message ?? err.message,
          ignoreCancel,
        );
        if (decision !== 'retry') return undefined;
      }
    }
  }

  // The person as the systems know them; the email may be learnt from the directory.
  let subject = request.subject;

  type Lookup = (system: string) => Promise<Discovery | undefined>;
  /** Discovery for a stage: what fails after its retries waits for an operator. */
  const lookupForStage: Lookup = async (system) => {
    const found = await withOperatorFallback(`discover/${system}`, system, `map access in ${system}`, () =>
      discover({ system, subject }),
    );
    // Skipping a system's discovery takes it out of this offboarding (e.g. decommissioned).
    if (!found && status.manualTasks.some((t) => t.id === `discover/${system}` && t.state === 'skipped')) {
      status.systems = status.systems.filter((s) => s !== system);
    }
    return found;
  };

  async function discoverIn(systems: string[], lookup: Lookup): Promise<Discovery[]> {
    const results = await Promise.all(systems.map(lookup));
    return results.filter((result): result is Discovery => result !== undefined);
  }

  async function discoverAll(lookup: Lookup = lookupForStage): Promise<Discovery[]> {
    const found = await discoverIn(status.systems, lookup);
    learnManager(found);
    if (subject.email) return found;
    // No email from HR: take it from a directory when the directories agree on one, and look
    // again where no account was found by id alone. Disagreeing directories are not guessed from.
    const emails = [
      ...new Set(found.map((d) => d.identity?.email?.toLowerCase()).filter((e): e is string => Boolean(e))),
    ];
    if (emails.length !== 1) return found;
    subject = { ...subject, email: emails[0] };
    const sources = found.filter((d) => d.identity?.email).map((d) => d.system);
    audit({ action: 'identity_correlated', actor: 'workflow', details: { field: 'email', from: sources } });
    const retry = found.filter((d) => d.account === null).map((d) => d.system);
    if (retry.length === 0) return found;
    const again = await discoverIn(retry, lookup);
    return [...found.filter((d) => !retry.includes(d.system)), ...again];
  }

  // Pre-flight: an offboarding due later maps access as soon as it starts, read-only, so that a
  // system it cannot reach (expired credentials, a renamed org) or a person it cannot find is
  // known days ahead rather than at the effective time, and the manager hears of it now. A
  // failure here opens no task and holds nothing up: it is audited and told to the IT channel,
  // and the stage's own discovery deals with whatever is still wrong then.
  const PREFLIGHT_MIN_LEAD_MS = 60 * 60 * 1000;
  const { discover: discoverAhead } = proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 3, initialInterval: '2 seconds' },
  });
  const lookupAhead: Lookup = async (system) => {
    try {
      return await discoverAhead({ system, subject });
    } catch (err) {
      const error = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
      audit({
        action: 'preflight_failed',
        actor: 'workflow',
        system,
        outcome: 'failed',
        details: { error, dueAt: remaining[0]?.dueAt ?? null },
      });
      tell(
        'preflight',
        `pre-flight: cannot map access in ${system} — ${error}; fix it before ${remaining[0]?.dueAt ?? 'the first stage'}`,
      );
      return undefined;
    }
  };
  async function preflight() {
    const found = await discoverAll(lookupAhead);
    for (const discovery of found) {
      status.accounts[discovery.system] = discovery.account?.id ?? null;
      audit({
        action: 'access_discovered',
        actor: 'workflow',
        system: discovery.system,
        details: {
          stage: 'preflight',
          account: discovery.account,
          entitlements: discovery.entitlements.map((e) => ({ id: e.id, kind: e.kind })),
          credentials: discovery.credentials.length,
        },
      });
    }
  }

  async function runAction(action: Action, actor: string, ignoreCancel = false): Promise<ActionStatus> {
    const entry: ActionStatus = status.actions.find((a) => a.id === action.id) ?? {
      ...action,
      state: 'pending',
      attempts: 0,
    };
    if (!status.actions.includes(entry)) status.actions.push(entry);
    entry.state = 'running';
    const result = await withOperatorFallback(
      action.id,
      action.system,
      `${action.kind}${action.target ? ` ${action.target.id}` : ''} in ${action.system}`,
      async () => {
        try {
          const applied = await applyAction({ action, subject });
          entry.attempts += applied.attempt;
          return applied;
        } catch (err) {
          entry.attempts +=
            err instanceof ActivityFailure && err.retryState === 'MAXIMUM_ATTEMPTS_REACHED'
              ? plan.retry.maximumAttempts
              : 1;
          entry.state = 'failed';
          entry.lastError = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
          audit({
            action: action.kind,
            actor,
            system: action.system,
            outcome: 'failed',
            details: {
              actionId: action.id,
              stage: action.stage,
              target: action.target?.id ?? null,
              error: entry.lastError,
              attempts: entry.attempts,
            },
          });
          throw err;
        }
      },
      ignoreCancel,
    );
    entry.completedAt = now();
    if (result) {
      entry.state = result.outcome;
      audit({
        action: action.kind,
        actor,
        system: action.system,
        outcome: result.outcome,
        details: {
          actionId: action.id,
          stage: action.stage,
          target: action.target?.id ?? null,
          attempts: entry.attempts,
          ...result.details,
        },
      });
    } else {
      entry.state =
        status.cancelled && !status.manualTasks.some((t) => t.id === action.id && t.state === 'skipped')
          ? 'cancelled'
          : 'skipped';
    }
    return entry;
  }

  async function runStage(stage: PlannedStage) {
    const stageStatus = status.stages.find((st) => st.name === stage.name)!;
    status.phase = 'running';
    status.stage = stage.name;
    status.nextStage = remaining[0] ? { name: remaining[0].name, dueAt: remaining[0].dueAt } : null;
    stageStatus.startedAt = now();
    publishSearchAttributes();
    const actor = status.expedited ? status.expedited.by : 'workflow';
    audit({
      action: 'stage_started',
      actor,
      details: { stage: stage.name, dueAt: stage.dueAt, expedited: status.expedited !== null },
    });

    const before = await discoverAll();
    for (const found of before) {
      // A person with no account in a system is reported (status, audit), never guessed at.
      status.accounts[found.system] = found.account?.id ?? null;
      audit({
        action: 'access_discovered',
        actor: 'workflow',
        system: found.system,
        details: {
          stage: stage.name,
          account: found.account,
          entitlements: found.entitlements.map((e) => ({ id: e.id, kind: e.kind })),
          credentials: found.credentials.length,
        },
      });
    }
    // Systems run in parallel; within one, login is disabled first and the rest follows in
    // parallel: nobody opens a new session after theirs were ended, and where disabling takes
    // everything with it (GitHub membership) the removals that follow find it gone. A system
    // that needs a person holds up no other system.
    const actions = actionsForStage(stage, before, plan);
    await Promise.all(
      [...new Set(actions.map((a) => a.system))].map(async (system) => {
        const mine = actions.filter((a) => a.system === system);
        await Promise.all(mine.filter((a) => a.kind === 'disable_login').map((action) => runAction(action, actor)));
        await Promise.all(mine.filter((a) => a.kind !== 'disable_login').map((action) => runAction(action, actor)));
      }),
    );
    if (status.cancelled) return;

    // Verification sweep: what the stage should have removed and is still there (a concurrent
    // change, a grant in the meantime) is revoked once more, and whatever survives that too is
    // escalated to a person.
    let after = await discoverAll();
    const firstLeftovers = leftoversAfterStage(stage, after, plan);
    if (firstLeftovers.length > 0) {
      const systems = new Set(firstLeftovers.map((leftover) => leftover.split(':')[0]));
      const recheck = { ...stage, name: `${stage.name}-recheck` };
      audit({
        action: 'stage_rechecked',
        actor: 'workflow',
        outcome: 'leftovers',
        details: { stage: stage.name, leftovers: firstLeftovers },
      });
      await Promise.all(
        actionsForStage(
          recheck,
          after.filter((d) => systems.has(d.system)),
          plan,
        ).map((action) => runAction(action, actor)),
      );
      after = await discoverAll();
    }
    const leftovers = leftoversAfterStage(stage, after, plan);
    audit({
      action: 'stage_verified',
      actor: 'workflow',
      outcome: leftovers.length ? 'leftovers' : 'clean',
      details: {
        stage: stage.name,
        leftovers,
        disablesLogin: stage.steps.some((s) => s.action === 'disable_login'),
        // After the last stage that takes access away (a later one only deletes what is already
        // disabled), the metrics measure the time from the HR event: this offboarding's start.
        lastRevokingStage: revokes(stage) && !remaining.some(revokes),
        secondsSinceEffective: Math.round((Date.now() - Date.parse(plan.effectiveAt)) / 1000),
        secondsSinceReceived: Math.round((Date.now() - info.startTime.getTime()) / 1000),
      },
    });
    await Promise.all(
      leftovers.map(async (leftover, i) => {
        const taskId = `verify/${stage.name}/${i + 1}`;
        for (;;) {
          const decision = await awaitOperator(
            taskId,
            leftover.split(':')[0] ?? null,
            `verification after stage ${stage.name}`,
            `still present: ${leftover}`,
            false,
          );
          if (decision !== 'retry') return;
          if (!leftoversAfterStage(stage, await discoverAll(), plan).includes(leftover)) return resolveTask(taskId);
        }
      }),
    );
    stageStatus.finishedAt = now();
  }

  // ---- the plan, stage by stage ----
  /** A stage that takes access away (a later one may only delete what is already disabled). */
  const revokes = (stage: PlannedStage) => stage.steps.some((step) => step.action !== 'delete_account');
  const firstDue = remaining[0] ? Date.parse(remaining[0].dueAt) : Date.now();
  if (firstDue - Date.now() > PREFLIGHT_MIN_LEAD_MS && patched('preflight-discovery')) await preflight();
  while (remaining.length > 0) {
    const stage = remaining[0]!;
    const version = planVersion;
    await waitUntilDue(stage);
    if (status.cancelled) break;
    if (planVersion !== version) continue; // replaced while waiting: the new plan's stages are next
    remaining.shift();
    await runStage(stage);
    if (status.cancelled) break;
  }

  if (status.cancelled) {
    status.phase = 'restoring';
    publishSearchAttributes();
    await restoreDisabledLogins(status, runAction);
    status.phase = 'cancelled';
  } else {
    status.phase = 'completed';
  }
  status.stage = null;
  status.nextStage = null;
  publishSearchAttributes();

  const counts: Record<string, number> = {};
  for (const action of status.actions) counts[action.state] = (counts[action.state] ?? 0) + 1;
  audit({
    action: status.phase === 'cancelled' ? 'offboarding_cancelled' : 'offboarding_completed',
    actor: status.cancelled?.by ?? 'workflow',
    outcome: status.phase,
    details: { actions: counts, slaDeadline: plan.slaDeadline },
  });
  tell(
    status.phase === 'cancelled' ? 'cancelled' : 'completed',
    `${status.phase}: ${
      Object.entries(counts)
        .map(([state, n]) => `${n} ${state}`)
        .join(', ') || 'no actions'
    }`,
  );
  // Cancelled before anything was discovered: nobody learnt the manager's email.
  if (notifiesManager && !manager.lookedUp) {
    manager.lookedUp = true;
    sayWhatWaitedForManager();
  }
  await condition(allHandlersFinished);
  // A failed notification adds an audit event while we wait: drain until nothing is left.
  while (pendingAudit.length > 0) await Promise.all(pendingAudit.splice(0));
  return {
    phase: status.phase as 'completed' | 'cancelled',
    actions: counts,
    manualTasksSkipped: status.manualTasks.filter((t) => t.state === 'skipped').length,
  };
}

/**
 * After a cancel: logins this offboarding disabled (outcome `done`, not `already`) are enabled
 * again, unless the account was deleted. Removed entitlements are not granted back: the audit
 * names them so that an owner can.
 */
async function restoreDisabledLogins(
  status: OffboardingStatus,
  runAction: (action: Action, actor: string, ignoreCancel: boolean) => Promise<ActionStatus>,
) {
  const deleted = new Set(
    status.actions
      .filter((a) => a.kind === 'delete_account' && (a.state === 'done' || a.state === 'already'))
      .map((a) => a.system),
  );
  const disabledByUs = status.actions.filter(
    (a) => a.kind === 'disable_login' && a.state === 'done' && !deleted.has(a.system),
  );
  const actor = status.cancelled?.by ?? 'workflow';
  await Promise.all(
    disabledByUs.map((disabled) =>
      runAction(
        {
          id: `cancel/${disabled.system}/enable_login`,
          stage: 'cancel',
          system: disabled.system,
          kind: 'enable_login',
          accountId: disabled.accountId,
        },
        actor,
        true,
      ),
    ),
  );
}
