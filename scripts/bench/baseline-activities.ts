/** The baseline's one activity: nothing. */
export async function noop(): Promise<void> {}
