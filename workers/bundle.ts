import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from './codec.js';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

type WebpackConfigHook = NonNullable<NonNullable<WorkerOptions['bundlerOptions']>['webpackConfigHook']>;

// The workflow bundler (webpack) does not map ESM's `.js` import suffixes to `.ts` files by itself.
const webpackConfigHook: WebpackConfigHook = (config) => {
  config.resolve = { ...config.resolve, extensionAlias: { '.js': ['.ts', '.js'] } };
  return config;
};

export const bundlerOptions: WorkerOptions['bundlerOptions'] = { webpackConfigHook };

// Workers with and without payload keys run the same bundle: failures are encoded either way
// (without a codec the encoded attributes are plain JSON, which every client decodes).
export function bundleWorkflows() {
  return bundleWorkflowCode({ workflowsPath, webpackConfigHook, failureConverterPath: FAILURE_CONVERTER_PATH });
}
