/** The page's shapes for state that comes from the engine. */

/**
 * Something the page asks the engine for: not asked for ('none'), on its way ('loading', with progress or what is
 * being read), here ('ready'), or failed ('error', with a message for people). Loading and Failed add fields to
 * their states (e.g. the name of what is being read).
 */
export type Loadable<T, Loading = unknown, Failed = unknown> =
  | { kind: 'none' }
  | ({ kind: 'loading' } & Loading)
  | { kind: 'ready'; value: T }
  | ({ kind: 'error'; message: string } & Failed);

export const NONE = { kind: 'none' } as const;

/** The outcome of an action, shown under its section (saved a file, renamed a run, or why not). */
export interface StatusMessage {
  kind: 'ok' | 'error';
  text: string;
}
