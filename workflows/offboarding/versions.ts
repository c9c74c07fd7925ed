/**
 * Every `patched()` id of the offboarding workflow, and what it gates. A patch follows
 * `patched` → `deprecatePatch` → removed, once no run started before it is open.
 */
import { patched } from '@temporalio/workflow';

export const PATCHES = {
  /**
   * 2026-12-01: each system runs its own pipeline through the plan (workflows/offboarding/).
   * Runs started before it continue on workflows/legacy/stage-barrier.ts, where each stage is a
   * barrier across all systems; that file still holds the three patches below, which every run
   * of the pipeline version has on unconditionally.
   */
  perSystemPipelines: 'per-system-pipelines',
  /** 2026-11-26 (legacy only): manager notifications, delivery in order, the start told first. */
  managerNotifications: 'manager-notifications',
  /** 2026-11-26 (legacy only): a `manual_task_resolved` row when an operator's retry worked. */
  manualTaskResolved: 'manual-task-resolved',
  /** 2026-11-26 (legacy only): pre-flight discovery for offboardings due more than an hour ahead. */
  preflightDiscovery: 'preflight-discovery',
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
} as const;

/** False only while replaying a run started before per-system pipelines. */
export const runsPerSystemPipelines = (): boolean => patched(PATCHES.perSystemPipelines);

/** False while replaying a run whose recheck reopened what an operator had skipped. */
export const skippedStaysSkipped = (): boolean => patched(PATCHES.skippedStaysSkipped);
