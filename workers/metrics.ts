/**
 * Prometheus metrics of the worker: offboardings started and finished, action outcomes per
 * system, escalations to people, the time from the HR event to the last revocation, and the time
 * from the effective time to the end of the first stage that disables login (the SLA's clock). Counted from the audit events the workflow records, so every worker that
 * writes an event counts it once (Prometheus sums across workers).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditEvent } from '../model/audit.js';

const OUTCOMES = new Set(['done', 'already', 'not_applicable', 'failed']);

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'offboard_worker_' });
  const offboardings = new Counter({ name: 'offboard_offboardings_total', help: 'Offboardings by what happened to them: started, completed, cancelled', labelNames: ['state'], registers: [registry] });
  const actions = new Counter({ name: 'offboard_action_outcomes_total', help: 'Revocation actions by system, action and outcome', labelNames: ['system', 'action', 'outcome'], registers: [registry] });
  const escalations = new Counter({ name: 'offboard_escalations_total', help: 'Manual tasks opened, reminded about and overdue', labelNames: ['kind'], registers: [registry] });
  const revocation = new Histogram({
    name: 'offboard_effective_to_revocation_seconds',
    help: 'Seconds from the effective time to the end of the first stage that disables login',
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600],
    registers: [registry],
  });

  const hrEventToRevocation = new Histogram({
    name: 'offboard_hr_event_to_revocation_seconds',
    help: 'Seconds from the HR event (the offboarding\'s start) to the end of its last revoking stage, verification included',
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600, 30 * 24 * 3600],
    registers: [registry],
  });

  return {
    registry,
    observe(event: AuditEvent) {
      if (event.action === 'offboarding_started') offboardings.inc({ state: 'started' });
      else if (event.action === 'offboarding_completed') offboardings.inc({ state: 'completed' });
      else if (event.action === 'offboarding_cancelled') offboardings.inc({ state: 'cancelled' });
      else if (event.action === 'manual_task_opened') escalations.inc({ kind: 'opened' });
      else if (event.action === 'manual_task_reminder') escalations.inc({ kind: 'reminder' });
      else if (event.action === 'manual_task_overdue') escalations.inc({ kind: 'overdue' });
      else if (event.system && event.outcome && OUTCOMES.has(event.outcome)) actions.inc({ system: event.system, action: event.action, outcome: event.outcome });
      const seconds = event.details.secondsSinceEffective;
      if (event.action === 'stage_verified' && event.details.disablesLogin === true && typeof seconds === 'number') revocation.observe(Math.max(seconds, 0));
      const sinceReceived = event.details.secondsSinceReceived;
      if (event.action === 'stage_verified' && event.details.lastRevokingStage === true && typeof sinceReceived === 'number') hrEventToRevocation.observe(Math.max(sinceReceived, 0));
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

/** Serves /metrics on host:port (127.0.0.1 by default: put a scraper next to it, not the internet). */
export async function startMetricsServer(metrics: Metrics, port: number, host = '127.0.0.1'): Promise<{ url: string; server: Server }> {
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
