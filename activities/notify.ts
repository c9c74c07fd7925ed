/**
 * Notifications to the people around an offboarding: the IT/security channel hears when one
 * starts, is held, needs a person (manual task, reminder, overdue) and completes; the person's
 * manager hears, by direct message, when it starts, is held, is overdue on a task, and ends.
 * Messages carry identifiers only (employee id, systems, task ids), never names or emails. Every
 * notification is also a structured log line (without the manager's email), so a deployment
 * without Slack still has the trail. One notification is one message to one audience, so a retry
 * never posts to the other audience twice.
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
      /** Direct-message the person's manager (found by email: users:read.email) as well. */
      notifyManagers: z.boolean().default(true),
    })
    .optional(),
});
export type NotificationsConfig = z.infer<typeof notificationsSchema>;

export interface Notification {
  event:
    | 'started'
    | 'held'
    | 'superseded'
    | 'preflight'
    | 'not_found'
    | 'stalled'
    | 'identity'
    | 'manual_task'
    | 'reminder'
    | 'overdue'
    | 'completed'
    | 'cancelled';
  employeeId: string;
  workflowId: string;
  text: string;
  /** `it` (the default) posts to the configured channel; `manager` sends a direct message to `managerEmail`. */
  audience?: 'it' | 'manager';
  managerEmail?: string;
}

const PERMANENT_SLACK_ERRORS = [
  'not_authed',
  'invalid_auth',
  'channel_not_found',
  'not_in_channel',
  'missing_scope',
  'account_inactive',
  'users_not_found',
];

export function createNotifier(config: NotificationsConfig, logger: pino.Logger) {
  const slack = config.slack
    ? new WebClient(config.slack.token, {
        slackApiUrl: config.slack.apiUrl,
        rejectRateLimitedCalls: true,
        retryConfig: { retries: 0 },
      })
    : undefined;
  return async function notify(notification: Notification): Promise<{ delivered: string[] }> {
    const audience = notification.audience ?? 'it';
    logger.info(
      {
        notification: notification.event,
        audience,
        employeeId: notification.employeeId,
        workflowId: notification.workflowId,
      },
      notification.text,
    );
    if (!slack || !config.slack) return { delivered: ['log'] };
    const text = `[${notification.event}] ${notification.text}`;
    try {
      if (audience === 'manager') {
        if (!config.slack.notifyManagers) return { delivered: ['log'] };
        if (!notification.managerEmail)
          throw new ConnectorError('no manager email to notify', false, 'manager_unknown');
        // A user id as the channel opens (or reuses) the bot's direct message with that user.
        const found = await slack.users.lookupByEmail({ email: notification.managerEmail });
        if (!found.user?.id)
          throw new ConnectorError("Slack found no user for the manager's email", false, 'slack_users_not_found');
        await slack.chat.postMessage({ channel: found.user.id, text, unfurl_links: false });
        return { delivered: ['log', 'slack:manager'] };
      }
      await slack.chat.postMessage({ channel: config.slack.channel, text, unfurl_links: false });
      return { delivered: ['log', 'slack'] };
    } catch (err) {
      throw slackFailure(err);
    }
  };
}

/** A Slack Web API error as a ConnectorError: rate limits wait as told, configuration errors do not retry. */
function slackFailure(err: unknown): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const data = err as { data?: { error?: string }; retryAfter?: number; code?: string };
  if (data.code === 'slack_webapi_rate_limited_error') {
    return new ConnectorError(
      'Slack rate-limited the notification',
      true,
      'slack_ratelimited',
      (data.retryAfter ?? 1) * 1000,
    );
  }
  const error = data.data?.error;
  const permanent = error !== undefined && PERMANENT_SLACK_ERRORS.includes(error);
  const hint =
    error === 'users_not_found'
      ? ' (the manager has no Slack account under that email, or it is deactivated)'
      : permanent
        ? ' (check the bot token, its chat:write and users:read.email scopes and that the bot is in the channel)'
        : '';
  return new ConnectorError(
    `Slack notification failed: ${error ?? (err as Error).message}${hint}`,
    !permanent,
    `slack_${error ?? 'unreachable'}`,
  );
}
