/**
 * Notifications to the people around an offboarding: the IT/security channel hears when one
 * starts, is held, needs a person (manual task, reminder, overdue) and completes. Messages carry
 * identifiers only (employee id, systems, task ids), never names or emails. Every notification is
 * also a structured log line, so a deployment without Slack still has the trail.
 */
import { WebClient } from '@slack/web-api';
import { z } from 'zod';
import type pino from 'pino';
import { ConnectorError } from './connectors/types.js';

export const notificationsSchema = z.object({
  slack: z
    .object({
      /** A bot token with chat:write; a secret. */
      token: z.string().min(1),
      /** Where IT and security follow offboardings, e.g. #it-offboarding (or a channel id). */
      channel: z.string().min(1),
      /** The Web API base URL; the default is Slack's own. */
      apiUrl: z.url().default('https://slack.com/api/'),
    })
    .optional(),
});
export type NotificationsConfig = z.infer<typeof notificationsSchema>;

export interface Notification {
  event: 'started' | 'held' | 'manual_task' | 'reminder' | 'overdue' | 'completed' | 'cancelled';
  employeeId: string;
  workflowId: string;
  text: string;
}

export function createNotifier(config: NotificationsConfig, logger: pino.Logger) {
  const slack = config.slack
    ? new WebClient(config.slack.token, { slackApiUrl: config.slack.apiUrl, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } })
    : undefined;
  return async function notify(notification: Notification): Promise<{ delivered: string[] }> {
    logger.info({ notification: notification.event, employeeId: notification.employeeId, workflowId: notification.workflowId }, notification.text);
    if (!slack || !config.slack) return { delivered: ['log'] };
    try {
      await slack.chat.postMessage({ channel: config.slack.channel, text: `[${notification.event}] ${notification.text}`, unfurl_links: false });
    } catch (err) {
      const data = (err as { data?: { error?: string }; retryAfter?: number; code?: string });
      if (data.code === 'slack_webapi_rate_limited_error') {
        throw new ConnectorError('Slack rate-limited the notification', true, 'slack_ratelimited', (data.retryAfter ?? 1) * 1000);
      }
      const error = data.data?.error;
      const permanent = error && ['not_authed', 'invalid_auth', 'channel_not_found', 'not_in_channel', 'missing_scope', 'account_inactive'].includes(error);
      throw new ConnectorError(`Slack notification failed: ${error ?? (err as Error).message}${permanent ? ' (check the bot token, its chat:write scope and that the bot is in the channel)' : ''}`, !permanent, `slack_${error ?? 'unreachable'}`);
    }
    return { delivered: ['log', 'slack'] };
  };
}
