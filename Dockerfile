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
CMD ["node", "--import", "tsx", "workers/worker.ts"]
