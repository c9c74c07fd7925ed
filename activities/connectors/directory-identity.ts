/**
 * What a directory (OpenLDAP or Active Directory) tells the rest of offboard about a person: their
 * email, for systems keyed by email, and their manager's email, for the manager's notifications.
 * Both schemas hold the manager as a DN in the person's `manager` attribute.
 */
import { ResultCodeError, type Client, type Entry } from 'ldapts';
import type { Discovery } from '../../model/plan.js';

/** The `mail` of the entry at `managerDn`, or undefined when there is none (or it is gone). */
export async function managerEmailOf(client: Client, managerDn: string | undefined): Promise<string | undefined> {
  if (!managerDn) return undefined;
  try {
    const { searchEntries } = await client.search(managerDn, { scope: 'base', attributes: ['mail'] });
    const mail = (searchEntries[0] as Entry | undefined)?.mail;
    const first = Array.isArray(mail) ? mail[0] : mail;
    return first === undefined ? undefined : String(first);
  } catch (err) {
    // noSuchObject (32): the manager left before the person; the offboarding goes on without them.
    if (err instanceof ResultCodeError && err.code === 32) return undefined;
    throw err;
  }
}

export function directoryIdentity(
  email: string | undefined,
  managerEmail: string | undefined,
): Pick<Discovery, 'identity'> {
  if (!email && !managerEmail) return {};
  return { identity: { ...(email ? { email } : {}), ...(managerEmail ? { managerEmail } : {}) } };
}
