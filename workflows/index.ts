// The workflow bundle's entry point: every workflow type the worker registers.
export { offboarding } from './offboarding.js';
