import { z } from 'zod';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const DURATION = /^(-)?(\d+)(ms|s|m|h|d|w)$/;

/** Parses "30d", "4h", "15m", "-2d" into milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const [, minus, amount, unit] = match;
  const ms = Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  return minus ? -ms : ms;
}

/** A duration in config files: "30d", "4h", "90s", "-2d" (before the effective time). Parsed to ms. */
export const durationSchema = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${text}" is not a duration: use a number and a unit, e.g. 30d, 4h, 15m, 90s`,
    });
    return z.NEVER;
  }
  return ms;
});

export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    if (abs >= UNIT_MS[unit] && abs % UNIT_MS[unit] === 0) return `${sign}${abs / UNIT_MS[unit]}${unit}`;
  }
  return `${sign}${abs}ms`;
}
