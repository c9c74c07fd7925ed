import { pino, destination } from 'pino';

/** Structured JSON logs on stderr. Identifiers only: no names, emails or secrets are logged. */
export const logger = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { service: 'offboard' } }, destination(2));
