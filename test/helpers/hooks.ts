import { stopSharedServers } from './environment.js';

// Root hooks: the shared servers stop once, after every test file has run.
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopSharedServers();
  },
};
