/**
 * Mapping access, and the person as the systems know them. Each system is mapped on its own;
 * what the directories know (the email, the manager) is learnt once each directory has answered
 * (found the person, or failed to be mapped). The one wait across systems is here, and only for
 * a person HR sent without an email: a system that found nobody by id alone waits for the
 * directories alone, never for another SaaS app, then looks again by the email they agree on.
 * Disagreeing directories are not guessed from. The wait is bounded (`IDENTITY_GRACE`): a
 * directory or identity provider that is failing or slow holds the others for at most that long,
 * after which the sources that answered decide, if they agree; one that answers later with
 * another email is audited and told to IT.
 */
import { ActivityFailure, condition, patched } from '@temporalio/workflow';
import type { Discovery, PlannedStage } from '../../model/plan.js';
import { taskIdOf } from '../../model/manual-tasks.js';
import { discoverAhead, systemCalls } from './activities.js';
import type { Offboarding } from './context.js';
import { nowIso, trackCall, type OffboardingState } from './state.js';
import { PATCHES } from './versions.js';

/** How long a system waiting for the email waits for every identity source to answer. */
export const IDENTITY_GRACE = '1 minute';

const sourcesInPlay = (state: OffboardingState) =>
  state.identitySources.filter((s) => state.status.systems.includes(s));

/** Every identity source still in the offboarding has answered once (a system list without one: at once). */
const identitySourcesAnswered = (state: OffboardingState) =>
  sourcesInPlay(state).every((system) => system in state.discoveries);

/** The one email the answers agree on (lower-cased), or undefined when none or several. */
function agreedEmail(found: Discovery[]): string | undefined {
  const emails = [
    ...new Set(found.map((d) => d.identity?.email?.toLowerCase()).filter((e): e is string => Boolean(e))),
  ];
  return emails.length === 1 ? emails[0] : undefined;
}

/**
 * The wait for every identity source is over: the email the sources that answered agree on is
 * used (audited with those that had not answered), so a failing identity provider does not hold
 * the email-keyed systems until its retries run out.
 */
function learnFromAnswered({ state, recorder }: Offboarding) {
  if (state.subject.email || state.learnt) return;
  const answered = sourcesInPlay(state).flatMap((s) => state.discoveries[s] ?? []);
  const notYetAnswered = sourcesInPlay(state).filter((s) => !(s in state.discoveries));
  if (useAgreedEmail({ state, recorder }, answered, { notYetAnswered })) state.emailLearntEarly = true;
}

/** Takes the one email `found` agree on as the person's, audited with where it came from; false when none. */
function useAgreedEmail(
  { state, recorder }: Pick<Offboarding, 'state' | 'recorder'>,
  found: Discovery[],
  extra: { notYetAnswered?: string[] } = {},
): boolean {
  const email = agreedEmail(found);
  if (!email) return false;
  state.subject = { ...state.subject, email };
  const from = found.filter((d) => d.identity?.email).map((d) => d.system);
  recorder.audit({ action: 'identity_correlated', actor: 'workflow', details: { field: 'email', from, ...extra } });
  return true;
}

/** Records a system's discovery (null: it could not be mapped), and learns from all of them once each has one. */
function noteDiscovery(ctx: Offboarding, system: string, found: Discovery | null) {
  const { state, notifier } = ctx;
  const first = !state.learnt;
  state.discoveries[system] = found;
  if (!first || !identitySourcesAnswered(state)) return;
  state.learnt = true;
  const all = Object.values(state.discoveries).filter((d): d is Discovery => d !== null);
  notifier.learnManager(all);
  if (state.emailLearntEarly) return noteLateDisagreement(ctx, all);
  if (!state.subject.email) useAgreedEmail(ctx, all);
}

/** A source that answered after the bounded wait with another email than the one used: audited, told to IT. */
function noteLateDisagreement({ state, recorder, notifier }: Offboarding, all: Discovery[]) {
  const used = state.subject.email?.toLowerCase();
  const disagreeing = Object.fromEntries(
    all
      .filter((d) => d.identity?.email && d.identity.email.toLowerCase() !== used)
      .map((d) => [d.system, d.identity!.email!]),
  );
  if (Object.keys(disagreeing).length === 0) return;
  const from = all.filter((d) => d.identity?.email?.toLowerCase() === used).map((d) => d.system);
  recorder.audit({ action: 'identity_correlated', actor: 'workflow', details: { field: 'email', from, disagreeing } });
  notifier.tell(
    'identity',
    `${Object.keys(disagreeing).join(', ')} answered late with another email for ${state.request.subject.employeeId} than the one the email-keyed systems used (from ${from.join(', ')}): check those systems for an account of the person under the other address`,
  );
}

function auditDiscovered({ recorder }: Offboarding, found: Discovery, stage: string) {
  recorder.audit({
    action: 'access_discovered',
    actor: 'workflow',
    system: found.system,
    details: {
      stage,
      account: found.account,
      entitlements: found.entitlements.map((e) => ({ id: e.id, kind: e.kind })),
      credentials: found.credentials.length,
    },
  });
}

/**
 * Maps one system's access; what fails after its retries waits for an operator. Undefined when
 * the task was skipped (the system leaves this offboarding) or the offboarding was cancelled.
 */
async function discoverWithFallback(ctx: Offboarding, system: string): Promise<Discovery | undefined> {
  const { state, tasks } = ctx;
  const spec = { ref: { kind: 'discover', system } as const, description: `map access in ${system}` };
  const found = await tasks.withOperatorFallback(spec, async () => {
    try {
      return await trackCall(state, system, 'discover', (id) =>
        systemCalls(state.plan, id).discover({ system, subject: state.subject }),
      );
    } catch (err) {
      // Mapped or not, the system has answered for the correlation of identity.
      if (!(system in state.discoveries)) noteDiscovery(ctx, system, null);
      throw err;
    }
  });
  if (!found && tasks.wasSkipped(taskIdOf(spec.ref))) {
    // Skipping a system's discovery takes it out of this offboarding (e.g. decommissioned).
    state.status.systems = state.status.systems.filter((s) => s !== system);
  }
  return found;
}

/** Reads a system's access back after a stage's actions, to verify them. */
export async function readBack(ctx: Offboarding, system: string): Promise<Discovery | undefined> {
  const found = await discoverWithFallback(ctx, system);
  if (found) noteDiscovery(ctx, system, found);
  return found;
}

/** Maps a system's access at the start of a stage. */
export async function mapAccess(ctx: Offboarding, system: string, stage: PlannedStage): Promise<Discovery | undefined> {
  const { state } = ctx;
  // The email may be learnt while this call runs: what counts is whether this call had it.
  const hadEmail = state.subject.email !== undefined;
  let found = await discoverWithFallback(ctx, system);
  if (!found) return undefined;
  noteDiscovery(ctx, system, found);
  if (found.account === null && !hadEmail) {
    const heard = () => state.subject.email !== undefined || state.learnt;
    if (patched(PATCHES.boundedIdentityWait) && !heard() && !(await condition(heard, IDENTITY_GRACE)))
      learnFromAnswered(ctx);
    await condition(heard);
    if (state.subject.email) found = (await discoverWithFallback(ctx, system)) ?? found;
    noteDiscovery(ctx, system, found);
  }
  // What the person holds as a stage begins (a read-back after it may no longer find them).
  state.status.accounts[system] = found.account?.id ?? null;
  auditDiscovered(ctx, found, stage.name);
  noteFoundAtStage(ctx, system, stage, found);
  return found;
}

/**
 * Once every system still in the offboarding has been mapped for a stage: when none of them has
 * an account for the person, that is news (a mistyped HR id revokes nothing), said once per stage.
 */
function noteFoundAtStage(ctx: Offboarding, system: string, stage: PlannedStage, found: Discovery) {
  const { state } = ctx;
  const seen = (state.foundAtStage[stage.name] ??= {});
  if (system in seen) return; // a system maps once per stage; a repeated call changes nothing
  // A manual app (no API) reports a presumed account: it cannot tell, so it does not count.
  seen[system] = found.manual ? 'cannot_tell' : found.account !== null ? 'found' : 'none';
  const systems = state.status.systems;
  if (!systems.every((s) => s in seen)) return;
  if (systems.some((s) => seen[s] === 'found')) {
    state.status.foundInNoSystem = null;
    return;
  }
  const asked = systems.filter((s) => seen[s] === 'none');
  if (asked.length === 0 || !patched(PATCHES.stageFoundNowhere)) return;
  tellFoundNowhere(ctx, stage.name, asked, [], stage.dueAt);
}

/** The audit row, the status and the IT channel for a person no system has an account for. */
function tellFoundNowhere(
  { state, recorder, notifier }: Offboarding,
  stage: string,
  systems: string[],
  unreachable: string[],
  dueAt: string | null,
) {
  state.status.foundInNoSystem = { stage, since: nowIso(), systems, unreachable };
  recorder.audit({
    action: 'person_not_found',
    actor: 'workflow',
    outcome: 'not_found',
    details: { stage, systems, unreachable, dueAt },
  });
  const where = `${systems.join(', ')}${unreachable.length ? `; could not ask ${unreachable.join(', ')}` : ''}`;
  const text =
    stage === 'preflight'
      ? `pre-flight: ${state.request.subject.employeeId} was found in no system (${where}); check the employee id with HR before ${dueAt ?? 'the first stage'}, or nothing will be revoked`
      : `stage ${stage}: ${state.request.subject.employeeId} was found in no system (${where}); nothing was revoked — check the employee id with HR`;
  notifier.tell('not_found', text);
}

/**
 * Pre-flight: an offboarding due later maps access as soon as it starts, read-only, so that a
 * system it cannot reach (expired credentials, a renamed org) or a person it cannot find is
 * known days ahead, and the manager hears of it now. A failure opens no task and holds nothing
 * up: it is audited and told to IT, and the stage's own mapping deals with what is still wrong.
 */
export async function preflight(ctx: Offboarding): Promise<void> {
  const { state, recorder, notifier } = ctx;
  const dueAt = state.plan.stages[0]?.dueAt ?? null;
  const lookup = async (system: string): Promise<Discovery | null> => {
    try {
      return await discoverAhead({ system, subject: state.subject });
    } catch (err) {
      const error = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
      recorder.audit({
        action: 'preflight_failed',
        actor: 'workflow',
        system,
        outcome: 'failed',
        details: { error, dueAt },
      });
      notifier.tell(
        'preflight',
        `pre-flight: cannot map access in ${system} — ${error}; fix it before ${dueAt ?? 'the first stage'}`,
      );
      return null;
    }
  };
  const keep = (discovery: Discovery) => {
    state.preflight[discovery.system] = discovery;
    state.status.accounts[discovery.system] = discovery.account?.id ?? null;
  };
  const hadEmail = state.subject.email !== undefined;
  const found = await Promise.all(state.status.systems.map(lookup));
  found.forEach((discovery, i) => {
    noteDiscovery(ctx, state.status.systems[i]!, discovery);
    if (discovery) keep(discovery);
  });
  // Found by id alone before the email was learnt from a directory: look again by email.
  const again = !hadEmail && state.subject.email ? found.filter((d) => d?.account === null) : [];
  for (const discovery of await Promise.all(again.map((d) => lookup(d!.system)))) {
    if (!discovery) continue;
    state.discoveries[discovery.system] = discovery;
    keep(discovery);
  }
  for (const discovery of Object.values(state.preflight)) auditDiscovered(ctx, discovery, 'preflight');
  // Found in no system that answered (manual apps cannot tell): said now, days ahead.
  const answered = Object.values(state.preflight).filter((d) => !d.manual);
  const unreachable = state.status.systems.filter((s) => !(s in state.preflight));
  if (answered.length > 0 && answered.every((d) => d.account === null) && patched(PATCHES.preflightFoundNowhere))
    tellFoundNowhere(
      ctx,
      'preflight',
      answered.map((d) => d.system),
      unreachable,
      dueAt,
    );
}
