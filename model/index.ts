export * from './audit.js';
export * from './commands.js';
export * from './duration.js';
export * from './hr-event.js';
export * from './plan.js';
export * from './policy.js';
export * from './request.js';
