/**
 * The states of a gateway session and the only transitions between them. Anything else is a bug in the session, and
 * `to()` throws ERR_INTERNAL instead of letting it go on in a state nobody planned for:
 *
 *   idle -> connecting -> subscribing -> attaching <-> publishing -> detaching -> disconnecting -> closed
 *
 * A session whose errors subscription was refused goes from subscribing to detaching (it has nothing to detach but
 * closes the same way).
 *
 * Every state before `detaching` may also go straight to `disconnecting`: a connection that failed or was lost has
 * nothing to detach. `closed` is final.
 *
 * @example
 * const state = new SessionStateMachine();
 * state.to('connecting');
 * state.to('detaching'); // throws RelayError ERR_INTERNAL: connecting -> detaching
 */
import { RelayError } from '../errors.js';

export type SessionState = 'idle' | 'connecting' | 'subscribing' | 'attaching' | 'publishing' | 'detaching' | 'disconnecting' | 'closed';

/** The states a report names: `idle` (nothing sent yet) reads as connecting, and `disconnecting` is part of closing. */
export type SessionPhase = Exclude<SessionState, 'idle' | 'disconnecting'>;

export const SESSION_TRANSITIONS: { readonly [S in SessionState]: readonly SessionState[] } = {
  idle: ['connecting', 'disconnecting'],
  connecting: ['subscribing', 'disconnecting'],
  subscribing: ['attaching', 'detaching', 'disconnecting'],
  attaching: ['publishing', 'detaching', 'disconnecting'],
  publishing: ['attaching', 'detaching', 'disconnecting'],
  detaching: ['disconnecting'],
  disconnecting: ['closed'],
  closed: [],
};

export class SessionStateMachine {
  private current: SessionState = 'idle';
  /** Phases in the order they were entered; a session is reported as connecting from the start. */
  private readonly history: SessionPhase[] = ['connecting'];

  get state(): SessionState {
    return this.current;
  }

  /** The state as reports name it. */
  get phase(): SessionPhase {
    return toPhase(this.current) ?? (this.current === 'idle' ? 'connecting' : 'closed');
  }

  get phases(): SessionPhase[] {
    return [...this.history];
  }

  /** Whether the session has reached `state` or gone past it on the main line. */
  isAtLeast(state: SessionState): boolean {
    return ORDER.indexOf(this.current) >= ORDER.indexOf(state);
  }

  /** Moves to `next`; staying in the same state is no transition and always allowed. */
  to(next: SessionState): void {
    if (next === this.current) return;
    if (!SESSION_TRANSITIONS[this.current].includes(next)) {
      throw new RelayError('ERR_INTERNAL', `illegal gateway session transition: ${this.current} -> ${next}`);
    }
    this.current = next;
    const phase = toPhase(next);
    if (phase !== undefined && this.history.at(-1) !== phase) this.history.push(phase);
  }
}

const ORDER: readonly SessionState[] = ['idle', 'connecting', 'subscribing', 'attaching', 'publishing', 'detaching', 'disconnecting', 'closed'];

function toPhase(state: SessionState): SessionPhase | undefined {
  return state === 'idle' || state === 'disconnecting' ? undefined : state;
}
