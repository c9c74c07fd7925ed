import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

type WebpackConfigHook = NonNullable<NonNullable<WorkerOptions['bundlerOptions']>['webpackConfigHook']>;

// The workflow bundler (webpack) does not map ESM's `.js` import suffixes to `.ts` files by itself.
const webpackConfigHook: WebpackConfigHook = (config) => {
  config.resolve = { ...config.resolve, extensionAlias: { '.js': ['.ts', '.js'] } };
  return config;
};

export const bundlerOptions: WorkerOptions['bundlerOptions'] = { webpackConfigHook };

export function bundleWorkflows() {
  return bundleWorkflowCode({ workflowsPath, webpackConfigHook });
}
