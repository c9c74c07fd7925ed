/**
 * Prometheus metrics of the worker: offboardings started and finished, action outcomes per
 * system, escalations to people, the time from the HR event to every login disabled and to the
 * last revocation verified, and the time from the effective time to the end of the first stage
 * that disables login (the SLA's clock). Counted from the audit events the workflow records, read
 * through the audit-event contract (`model/audit-events.ts`), so every worker that writes an
 * event counts it once (Prometheus sums across workers).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditEvent } from '../model/audit.js';
import { isActionKindEvent, parseAuditRow } from '../model/audit-events.js';

/**
 * Fine enough below a minute to read p50 and p99 of an immediate offboarding (the workflow now
 * records milliseconds), and up to a day for staged ones.
 */
export const TIME_TO_ACCESS_GONE_BUCKETS = [0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300, 900, 3600, 86_400];

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'offboard_worker_' });
  const offboardings = new Counter({
    name: 'offboard_offboardings_total',
    help: 'Offboardings by what happened to them: started, completed, cancelled',
    labelNames: ['state'],
    registers: [registry],
  });
  const actions = new Counter({
    name: 'offboard_action_outcomes_total',
    help: 'Revocation actions by system, action and outcome',
    labelNames: ['system', 'action', 'outcome'],
    registers: [registry],
  });
  const escalations = new Counter({
    name: 'offboard_escalations_total',
    help: 'Manual tasks opened, reminded about and overdue',
    labelNames: ['kind'],
    registers: [registry],
  });
  const foundNowhere = new Counter({
    name: 'offboard_person_not_found_total',
    help: 'Offboardings whose person no system has an account for, at pre-flight or as a stage began (a mistyped HR id)',
    labelNames: ['when'],
    registers: [registry],
  });
  const unknownEvents = new Counter({
    name: 'offboard_audit_events_unrecognised_total',
    help: 'Audit events the metrics could not read (no schema for the action, or details of another shape)',
    labelNames: ['action'],
    registers: [registry],
  });
  const revocation = new Histogram({
    name: 'offboard_effective_to_revocation_seconds',
    help: 'Seconds from the effective time until login was disabled: the end of the first stage that disables login (stage-wide runs), or logins_disabled (per-system runs that record millisecondsSinceEffective)',
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600],
    registers: [registry],
  });
  const hrEventToRevocation = new Histogram({
    name: 'offboard_hr_event_to_revocation_seconds',
    help: 'Seconds from the HR event (offboard receiving it) until every system verified its last stage that takes access away',
    buckets: TIME_TO_ACCESS_GONE_BUCKETS,
    registers: [registry],
  });
  const hrEventToLoginsDisabled = new Histogram({
    name: 'offboard_hr_event_to_logins_disabled_seconds',
    help: 'Seconds from the HR event (offboard receiving it) until login was disabled (done, already or not applicable) in every system',
    buckets: TIME_TO_ACCESS_GONE_BUCKETS,
    registers: [registry],
  });

  return {
    registry,
    observe(row: AuditEvent) {
      const event = parseAuditRow(row);
      if (event.kind === 'unknown') {
        unknownEvents.inc({ action: row.action });
        return;
      }
      if (isActionKindEvent(event)) {
        actions.inc({ system: event.system, action: event.action, outcome: event.outcome });
        return;
      }
      switch (event.action) {
        case 'offboarding_started':
          offboardings.inc({ state: 'started' });
          break;
        case 'offboarding_completed':
          offboardings.inc({ state: 'completed' });
          break;
        case 'offboarding_cancelled':
          offboardings.inc({ state: 'cancelled' });
          break;
        case 'manual_task_opened':
          escalations.inc({ kind: 'opened' });
          break;
        case 'person_not_found':
          foundNowhere.inc({ when: event.details.stage === 'preflight' ? 'preflight' : 'stage' });
          break;
        case 'manual_task_reminder':
          escalations.inc({ kind: 'reminder' });
          break;
        case 'manual_task_overdue':
          escalations.inc({ kind: 'overdue' });
          break;
        case 'revocation_verified':
          hrEventToRevocation.observe(Math.max(event.details.millisecondsSinceReceived, 0) / 1000);
          break;
        case 'logins_disabled':
          hrEventToLoginsDisabled.observe(Math.max(event.details.millisecondsSinceReceived, 0) / 1000);
          if (event.details.millisecondsSinceEffective !== undefined)
            revocation.observe(Math.max(event.details.millisecondsSinceEffective, 0) / 1000);
          break;
        case 'stage_verified': {
          // Stage-wide runs (before per-system pipelines) carry whole seconds on the stage's row;
          // per-system rows carry none, their runs write the milestones above instead.
          const { disablesLogin, lastRevokingStage, secondsSinceEffective, secondsSinceReceived } = event.details;
          if (disablesLogin === true && secondsSinceEffective !== undefined)
            revocation.observe(Math.max(secondsSinceEffective, 0));
          if (lastRevokingStage === true && secondsSinceReceived !== undefined)
            hrEventToRevocation.observe(Math.max(secondsSinceReceived, 0));
          break;
        }
        default:
          break;
      }
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

/** Serves /metrics on host:port (127.0.0.1 by default: put a scraper next to it, not the internet). */
export async function startMetricsServer(
  metrics: Metrics,
  port: number,
  host = '127.0.0.1',
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return { url: `http://${host}:${typeof address === 'object' && address ? address.port : port}/metrics`, server };
}
