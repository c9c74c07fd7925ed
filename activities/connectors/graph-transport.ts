/**
 * The last handler of the Microsoft Graph client's middleware chain when extra certificate
 * authorities must be trusted (a TLS-inspecting proxy's CA, or a local stand-in's certificate).
 * The Graph client's own HTTPMessageHandler calls the global `fetch`, which in Node 20 takes no
 * CA option (its undici Agent is not importable without another package), so this one sends the
 * request the client prepared — URL, method, headers with the bearer token, body, abort signal —
 * over `node:https` with the public roots plus the extra CAs, and hands back a WHATWG `Response`
 * for the client to parse as it parses fetch's. Without extra CAs the client's own handler is used.
 *
 * The trust store is parsed once and connections are kept alive, through one Agent with one
 * secure context: a `ca` list on each request made Node parse the ~150 public roots again for
 * every new connection and join them into the agent's key on every request, which in a burst of
 * offboardings was the worker's largest single cost.
 */
import { Agent, request as httpsRequest } from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import type { Context, Middleware } from '@microsoft/microsoft-graph-client';

type HeadersInit = ConstructorParameters<typeof Headers>[0];
type BodyInit = ConstructorParameters<typeof Response>[0];

function headersOf(init: HeadersInit | undefined): Record<string, string> {
  const flat: Record<string, string> = {};
  new Headers(init).forEach((value, key) => {
    flat[key] = value;
  });
  return flat;
}

export class TrustedCaHttpHandler implements Middleware {
  private readonly agent: Agent;

  constructor(extraCaPem: string) {
    const secureContext = createSecureContext({ ca: [...rootCertificates, extraCaPem] });
    this.agent = new Agent({ keepAlive: true, secureContext });
  }

  /** Closes the connections kept alive. */
  close(): void {
    this.agent.destroy();
  }

  async execute(context: Context): Promise<void> {
    const request = context.request;
    const options = context.options ?? {};
    const url = typeof request === 'string' ? request : request.url;
    const method = options.method ?? (typeof request === 'string' ? 'GET' : request.method);
    const headers = {
      ...(typeof request === 'string' ? {} : headersOf(request.headers)),
      ...headersOf(options.headers as HeadersInit | undefined),
    };
    const body =
      options.body === undefined || options.body === null
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : Buffer.from(await new Response(options.body as BodyInit).arrayBuffer());
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    context.response = await new Promise<Response>((resolve, reject) => {
      const outgoing = httpsRequest(
        url,
        { method, headers, agent: this.agent, signal: options.signal ?? undefined },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('end', () => {
            const status = incoming.statusCode ?? 502;
            const answerHeaders = new Headers();
            for (const [key, value] of Object.entries(incoming.headers))
              if (value !== undefined) answerHeaders.set(key, Array.isArray(value) ? value.join(', ') : value);
            // A 204 or 304 Response may not carry a body, even an empty one.
            const content = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(
              new Response(content, { status, statusText: incoming.statusMessage ?? '', headers: answerHeaders }),
            );
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }
}
