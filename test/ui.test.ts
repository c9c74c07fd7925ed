/**
 * The Temporal UI in a real browser (Debian's headless Chromium, driven by playwright-core) on a
 * dev server of the test's own, with the codec server as the UI's codec endpoint: the workflow
 * list filters by offboard's search attributes, and the workflow page shows the input as the
 * codec server decrypted it for the browser, while the history Temporal stores holds ciphertext.
 *
 * Screenshots go to `test-artifacts/` at the repo root, or to $OFFBOARD_TEST_ARTIFACTS when set.
 * The UI loads lazily and long-polls (so `networkidle` never comes): pages are loaded to `load`
 * and then waited on for the text they must show.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startCodecServer, type CodecServer } from '../client/codec-server.js';
import { startOffboarding } from '../client/temporal.js';
import type { OffboardingRequest } from '../model/request.js';
import { samplePerson } from '../sandbox/org.js';
import { freePort, projectRoot, startTemporalDevServer, type TemporalDevServer } from '../scripts/services.js';
import { createKeyring, EncryptionCodec, ENCRYPTED_ENCODING } from '../workers/codec.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import { eventually, installRuntime, sharedPool, testConfig, workflowBundle } from './helpers/environment.js';

const CHROMIUM = '/usr/bin/chromium';
const chromiumMissing = !existsSync(CHROMIUM);
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const artifacts = process.env.OFFBOARD_TEST_ARTIFACTS || join(projectRoot, 'test-artifacts');
/** How long the UI may take to show something (it renders after its own API calls and the codec's). */
const UI_WAIT_MS = 20_000;

const title = 'the Temporal UI in headless Chromium: search-attribute filter, input decrypted by the codec server';
describe(chromiumMissing ? `${title} (skipped: ${CHROMIUM} is not installed)` : title, function () {
  this.timeout(60_000);
  // A person no other test in the shared slapd offboards (see test/helpers/environment.ts).
  const person = samplePerson('E1035');
  const workflowId = `offboarding-${person.employeeId}`;
  const codec = new EncryptionCodec(createKeyring([{ id: 'ui-test', key: new Uint8Array(randomBytes(32)) }]));
  const dataConverter = { payloadCodecs: [codec] };
  const CODEC_TOKEN = randomBytes(32).toString('base64url');
  let codecServer: CodecServer;
  let server: TemporalDevServer;
  let uiUrl: string;
  let client: Client;
  let nativeConnection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let browser: Browser;
  let page: Page;
  let runId: string;
  /** What the browser asked the codec server, and how it answered. */
  const codecCalls: { method: string; path: string; status: number | undefined }[] = [];

  async function screenshot(name: string): Promise<string> {
    const path = join(artifacts, name);
    await page.screenshot({ path });
    console.log(`      screenshot: ${path}`);
    return path;
  }

  /** The workflow list for a visibility query, through the UI's query URL. */
  async function openList(query: string) {
    await page.goto(`${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`, { waitUntil: 'load' });
  }

  const rows = () => page.getByTestId('workflows-summary-configurable-table-row');
  const count = () => page.getByTestId('workflow-count');
  /** The UI's filter control for the search attribute, as it parsed the query. */
  const filterChip = () => page.locator('button[aria-controls="dropdown-filter-chip-OffboardingEmployeeId-0"]');

  before(async function () {
    if (chromiumMissing) this.skip();
    installRuntime();
    mkdirSync(artifacts, { recursive: true });
    const uiPort = await freePort();
    // No login on the dev server's UI, so no token to forward: the browser signs in at the codec
    // server with an API token (below), as an operator of `npm start` does.
    codecServer = await startCodecServer({
      codec,
      allowedOrigin: `http://127.0.0.1:${uiPort}`,
      auth: { apiTokens: [{ subject: 'it-operator', role: 'security', token: CODEC_TOKEN }] },
    });
    const [devServer, config, pool, bundle] = await Promise.all([
      startTemporalDevServer({ uiPort, codecEndpoint: codecServer.url }),
      testConfig(),
      sharedPool(),
      workflowBundle(),
    ]);
    server = devServer;
    uiUrl = server.uiUrl!;
    client = new Client({ connection: await Connection.connect({ address: server.address }), dataConverter });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    // This dev server is the test's own: the worker takes the default task queue, as the CLI expects.
    worker = await createOffboardingWorker({
      connection: nativeConnection,
      namespace: 'default',
      config,
      pool,
      dataConverter,
      workflowBundle: bundle,
    });
    running = worker.run();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    // The operator's path on a UI without a login: sign in at the codec server with an API token,
    // then turn on "Include cross-origin credentials" in the UI's codec settings (the UI keeps
    // those in the browser's local storage, where the settings dialog writes them).
    await page.goto(`${codecServer.url}/login`, { waitUntil: 'load' });
    await page.fill('input[name="token"]', CODEC_TOKEN);
    await page.click('button');
    await page.getByText('Signed in.').waitFor({ timeout: UI_WAIT_MS });
    await page.goto(uiUrl, { waitUntil: 'load' });
    const settings = {
      endpoint: JSON.stringify(codecServer.url),
      includeCredentials: 'true',
      overrideRemoteCodecConfiguration: 'true',
    };
    // A string: this test is compiled without the DOM's types.
    await page.evaluate(
      Object.entries(settings)
        .map(([key, value]) => `localStorage.setItem(${JSON.stringify(key)}, ${JSON.stringify(value)});`)
        .join(''),
    );
    page.on('requestfinished', (request) => {
      if (!request.url().startsWith(codecServer.url)) return;
      void request.response().then((response) =>
        codecCalls.push({
          method: request.method(),
          path: new URL(request.url()).pathname,
          status: response?.status(),
        }),
      );
    });

    const request: OffboardingRequest = {
      requestId: `hr-${randomUUID()}`,
      subject: { employeeId: person.employeeId, email: person.email },
      trigger: 'termination',
      reason: 'involuntary',
      employmentType: 'employee',
      effectiveAt: new Date().toISOString(),
      requestedBy: 'hr-system',
    };
    const started = await startOffboarding(client, request);
    assert.equal(started.workflowId, workflowId);
    runId = started.runId;
    await eventually(
      () => client.workflow.getHandle(workflowId).query<OffboardingStatus>('status'),
      (s) => s.stages[0]?.finishedAt !== undefined,
      `${workflowId}'s first stage`,
      30_000,
    );
    // Visibility is eventually consistent: the UI is opened once the server lists the workflow.
    await eventually(
      async () => {
        const ids: string[] = [];
        for await (const workflow of client.workflow.list({ query: `OffboardingEmployeeId = "${person.employeeId}"` }))
          ids.push(workflow.workflowId);
        return ids;
      },
      (ids) => ids.length === 1,
      'the visibility query',
    );
  });

  afterEach(async function () {
    // A failed test leaves a picture of what the browser showed.
    if (this.currentTest?.state === 'failed' && page) {
      const name = `ui-failed-${this.currentTest.title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}.png`;
      await screenshot(name).catch(() => undefined);
    }
  });

  after(async function () {
    await browser?.close();
    worker?.shutdown();
    await running;
    await nativeConnection?.close();
    await client?.connection.close();
    await server?.stop();
    await codecServer?.close();
  });

  it('lists exactly the offboarding that the OffboardingEmployeeId filter matches, and none for another id', async () => {
    await openList(`OffboardingEmployeeId = "${person.employeeId}"`);
    await rows().first().waitFor({ timeout: UI_WAIT_MS });
    // The UI parsed the query into its own filter control.
    await filterChip().waitFor({ timeout: UI_WAIT_MS });
    assert.match(await filterChip().innerText(), /^\s*OffboardingEmployeeId\s*=\s*"E1035"\s*$/);
    assert.equal(await rows().count(), 1, 'one row');
    const row = await rows().first().innerText();
    assert.ok(row.includes(workflowId) && row.includes(runId), `the row names ${workflowId} and its run: ${row}`);
    assert.match(row, /Running/);
    assert.equal((await count().innerText()).trim(), '1');
    await screenshot('ui-workflows-filtered-E1035.png');

    // The same list with an id nobody has: the filter, not the server's contents, chose that row.
    await openList('OffboardingEmployeeId = "E0000"');
    await filterChip().getByText('"E0000"').waitFor({ timeout: UI_WAIT_MS });
    // The empty state appears once the UI has the (empty) answer; a count of 0 alone could be the list still loading.
    await page.getByText('There are no results for the applied filters.').waitFor({ timeout: UI_WAIT_MS });
    assert.equal((await count().innerText()).trim(), '0');
    assert.equal(await rows().count(), 0, 'no row');
    assert.equal(await page.getByText(workflowId).count(), 0, `${workflowId} is not on the page`);
    await screenshot('ui-workflows-filtered-E0000.png');
  });

  it('opens offboarding-E1035 from the list and shows its input decrypted by the codec server', async () => {
    await openList(`OffboardingEmployeeId = "${person.employeeId}"`);
    // The UI decodes in the browser: it posts the payloads to the codec server, from the UI's origin.
    const firstDecode = page.waitForResponse(
      (response) => response.url() === `${codecServer.url}/decode` && response.request().method() === 'POST',
      { timeout: UI_WAIT_MS },
    );
    await rows().getByRole('link', { name: workflowId, exact: true }).click({ timeout: UI_WAIT_MS });
    await page.waitForURL(new RegExp(`/workflows/${workflowId}/${runId}/`), { timeout: UI_WAIT_MS });
    const input = page.getByTestId('input-and-result');
    // The input shows encrypted first, or not at all, until the codec server's answer arrives.
    await input.getByText(person.email).waitFor({ timeout: UI_WAIT_MS });
    const text = await input.innerText();
    assert.ok(text.includes(`"employeeId": "${person.employeeId}"`), `the decoded input: ${text}`);
    assert.ok(text.includes(`"email": "${person.email}"`), `the decoded input: ${text}`);
    assert.ok(
      !text.includes(ENCRYPTED_ENCODING) && !text.includes(Buffer.from(ENCRYPTED_ENCODING).toString('base64')),
      'no encrypted payload is shown',
    );
    const decode = await firstDecode;
    assert.equal(decode.status(), 200);
    assert.equal((await decode.request().allHeaders()).origin, new URL(uiUrl).origin);
    // The UI says its data encoder worked, and no codec call the browser made so far failed.
    await page.getByTestId('data-encoder-status-success').waitFor({ timeout: UI_WAIT_MS });
    const posts = codecCalls.filter((c) => c.method === 'POST');
    assert.ok(
      posts.length > 0 && posts.every((c) => c.path.endsWith('/decode') && c.status === 200),
      `the browser's codec calls: ${JSON.stringify(codecCalls)}`,
    );
    await screenshot('ui-workflow-offboarding-E1035.png');
  });

  it('without the codec, the stored history holds no email: only the codec server made it readable', async () => {
    // A client with no data converter on the same connection: what Temporal stores, as it stores it.
    const raw = new Client({ connection: client.connection });
    const pages: proto.temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const response = await raw.workflowService.getWorkflowExecutionHistory({
        namespace: 'default',
        execution: { workflowId, runId },
        ...(nextPageToken ? { nextPageToken } : {}),
      });
      pages.push(response);
      nextPageToken = response.nextPageToken?.length ? response.nextPageToken : undefined;
    } while (nextPageToken);
    const bytes = Buffer.concat(
      pages.map((p) => proto.temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(p).finish()),
    );
    const lower = bytes.toString('latin1').toLowerCase();
    assert.ok(!lower.includes(person.email.toLowerCase()), 'the email is not in the stored history');
    assert.ok(!lower.includes(person.uid.toLowerCase()), 'nor the uid (the name)');

    const [input] = pages[0]?.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    assert.ok(input, 'the start event has an input');
    assert.equal(Buffer.from(input.metadata?.encoding ?? []).toString(), ENCRYPTED_ENCODING);
    // Control: the same stored payload, decrypted, holds the email, so the search above could see it.
    const [decoded] = await codec.decode([input]);
    assert.ok(
      Buffer.from(decoded?.data ?? [])
        .toString()
        .includes(person.email),
    );
  });
});
