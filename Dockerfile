# The offboard worker (and CLI) image. Runs the TypeScript sources through tsx: no build step.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY model ./model
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY client ./client
COPY bin ./bin
USER node
# The heap limit keeps the worker under 1 GB with many runs waiting (docs/bench.md); raise it with the cache.
CMD ["node", "--max-old-space-size=768", "--import", "tsx", "workers/worker.ts"]
