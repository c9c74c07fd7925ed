/**
 * Every `patched()` id of the offboarding workflow, and what it gates. A patch follows
 * `patched` → `deprecatePatch` → removed, once no run started before it is open.
 */
import { patched } from '@temporalio/workflow';

export const PATCHES = {
  /**
   * 2026-12-01: each system runs its own pipeline through the plan (workflows/offboarding/). The
   * version before it (each stage a barrier across all systems, with its own patches
   * manager-notifications, manual-task-resolved and preflight-discovery) was retired on
   * 2026-12-02 before any release: a run without this marker is refused (`refuseRetiredVersion`).
   */
  perSystemPipelines: 'per-system-pipelines',
  /**
   * 2026-12-02: a first plan the `makePlan` activity refuses (the config changed after the API
   * checked the request, or a client that did not check) is audited (`plan_failed`) and waits as
   * manual task `plan` for retry or skip, instead of failing the workflow with nothing recorded.
   * Called only on that failure, so no history from before can reach it.
   */
  planFailureTask: 'plan-failure-task',
  /**
   * 2026-12-02: a pre-flight that finds the person in no system (every system that answered has
   * no account) audits `person_not_found` and tells the IT channel (a mistyped HR id is news days
   * ahead). Called only when that is so.
   */
  preflightFoundNowhere: 'preflight-found-nowhere',
  /**
   * 2026-12-02: a stage at which every system mapped has no account for the person audits
   * `person_not_found` and tells the IT channel once per stage. Called only when that is so.
   */
  stageFoundNowhere: 'stage-found-nowhere',
  /**
   * 2026-12-02: what an operator skipped in a stage is left out of that stage's recheck and
   * verification (before, the recheck ran the skipped action again under a new id and opened a
   * task for it). Asked only in a stage where something was skipped.
   */
  skippedStaysSkipped: 'skipped-stays-skipped',
  /**
   * 2026-12-02: a system waiting for the person's email waits for every identity source at most
   * `IDENTITY_GRACE` (a timer), then goes on with the email the sources that answered agree on;
   * before, one failing identity provider held every email-keyed system until its retries ran out.
   * Asked only where a system waits for the email.
   */
  boundedIdentityWait: 'bounded-identity-wait',
  /**
   * 2026-12-02: one timer watches every running step of the run for a stall
   * (stall-watchdog.ts); before, each step started a 5-minute timer and cancelled it when the step
   * ended (about 50 a person). Asked at each step.
   */
  oneStallWatchdog: 'one-stall-watchdog',
} as const;

/**
 * A run started before per-system pipelines has no marker, and this worker no longer has the
 * code it started on. Its workflow task fails with this message and is retried, so the run and its
 * history stay as they are (nothing is lost) until it is terminated and started again, or a worker
 * of a build before 2026-12-02 finishes it. New runs record the marker.
 */
export function refuseRetiredVersion(): void {
  if (!patched(PATCHES.perSystemPipelines))
    throw new Error(
      'this offboarding started on the stage-barrier version, which this worker no longer runs: terminate it and send the HR event again (or finish it on a build from before 2026-12-02)',
    );
}

/** False while replaying a run whose recheck reopened what an operator had skipped. */
export const skippedStaysSkipped = (): boolean => patched(PATCHES.skippedStaysSkipped);

/** False while replaying a run whose steps each started a stall timer of their own. */
export const oneStallWatchdog = (): boolean => patched(PATCHES.oneStallWatchdog);
