import { describe, expect, it } from 'vitest';
import { SESSION_TRANSITIONS, SessionStateMachine, type SessionState } from '../../../lib/gateway/session-state.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

/** Every state, listed by hand: a state added to the union without a line here fails the type check below. */
const ALL: readonly SessionState[] = ['idle', 'connecting', 'subscribing', 'attaching', 'publishing', 'detaching', 'disconnecting', 'closed'];
const everyStateListed: Record<SessionState, true> = Object.fromEntries(ALL.map((s) => [s, true])) as Record<SessionState, true>;

/** The shortest walk from idle to `state` on allowed transitions. */
function machineIn(state: SessionState): SessionStateMachine {
  const path: Record<SessionState, SessionState[]> = {
    idle: [],
    connecting: ['connecting'],
    subscribing: ['connecting', 'subscribing'],
    attaching: ['connecting', 'subscribing', 'attaching'],
    publishing: ['connecting', 'subscribing', 'attaching', 'publishing'],
    detaching: ['connecting', 'subscribing', 'detaching'],
    disconnecting: ['disconnecting'],
    closed: ['disconnecting', 'closed'],
  };
  const m = new SessionStateMachine();
  for (const s of path[state]) m.to(s);
  expect(m.state).toBe(state);
  return m;
}

describe('SESSION_TRANSITIONS', () => {
  it('names every state of the union', () => {
    expect(Object.keys(SESSION_TRANSITIONS).sort()).toEqual(Object.keys(everyStateListed).sort());
  });

  it('is the documented graph: the main line, publishing back to attaching, and the early ways out', () => {
    const pairs = ALL.flatMap((from) => SESSION_TRANSITIONS[from].map((to) => `${from}>${to}`));
    const mainLine = ['idle>connecting', 'connecting>subscribing', 'subscribing>attaching', 'attaching>publishing', 'publishing>detaching', 'detaching>disconnecting', 'disconnecting>closed'];
    const others = ['publishing>attaching', 'subscribing>detaching', 'attaching>detaching'];
    const early = ['idle', 'connecting', 'subscribing', 'attaching', 'publishing'].map((s) => `${s}>disconnecting`);
    expect(pairs.sort()).toEqual([...mainLine, ...others, ...early].sort());
  });
});

describe('SessionStateMachine.to', () => {
  const pairs = ALL.flatMap((from) => ALL.filter((to) => to !== from).map((to) => [from, to] as const));
  const allowed = pairs.filter(([from, to]) => SESSION_TRANSITIONS[from].includes(to));
  const refused = pairs.filter(([from, to]) => !SESSION_TRANSITIONS[from].includes(to));

  it('covers all 56 ordered pairs of distinct states', () => {
    expect(pairs).toHaveLength(56);
    expect(allowed).toHaveLength(15);
    expect(refused).toHaveLength(41);
  });

  it.each(allowed)('allows %s -> %s', (from, to) => {
    const m = machineIn(from);
    m.to(to);
    expect(m.state).toBe(to);
  });

  it.each(refused)('refuses %s -> %s with ERR_INTERNAL and stays put', (from, to) => {
    const m = machineIn(from);
    const before = m.phases;
    const error = thrownRelayError(() => m.to(to), 'ERR_INTERNAL');
    expect(error.message).toBe(`illegal gateway session transition: ${from} -> ${to}`);
    expect(m.state).toBe(from);
    expect(m.phases).toEqual(before);
  });

  it.each(ALL)('treats %s -> %s (the same state) as no transition', (state) => {
    const m = machineIn(state);
    const before = m.phases;
    m.to(state);
    expect(m.state).toBe(state);
    expect(m.phases).toEqual(before);
  });
});

describe('phases', () => {
  it('starts as connecting, and leaves idle and disconnecting out of the history', () => {
    const m = new SessionStateMachine();
    expect(m.state).toBe('idle');
    expect(m.phase).toBe('connecting');
    expect(m.phases).toEqual(['connecting']);
    m.to('connecting');
    expect(m.phases).toEqual(['connecting']);
    for (const s of ['subscribing', 'attaching', 'publishing', 'attaching', 'publishing', 'detaching', 'disconnecting'] as const) m.to(s);
    expect(m.phase).toBe('closed');
    m.to('closed');
    expect(m.phase).toBe('closed');
    expect(m.phases).toEqual(['connecting', 'subscribing', 'attaching', 'publishing', 'attaching', 'publishing', 'detaching', 'closed']);
  });

  it('reports a session that failed before connecting as connecting then closed', () => {
    const m = new SessionStateMachine();
    m.to('disconnecting');
    expect(m.phase).toBe('closed');
    m.to('closed');
    expect(m.phases).toEqual(['connecting', 'closed']);
  });

  it('names the current state as the phase on the main line', () => {
    for (const s of ['connecting', 'subscribing', 'attaching', 'publishing', 'detaching', 'closed'] as const) expect(machineIn(s).phase).toBe(s);
  });

  it('hands out a copy of the history', () => {
    const m = machineIn('attaching');
    m.phases.push('closed');
    expect(m.phases).toEqual(['connecting', 'subscribing', 'attaching']);
  });
});

describe('isAtLeast', () => {
  it('orders the states along the main line', () => {
    const m = machineIn('publishing');
    expect(m.isAtLeast('idle')).toBe(true);
    expect(m.isAtLeast('attaching')).toBe(true);
    expect(m.isAtLeast('publishing')).toBe(true);
    expect(m.isAtLeast('detaching')).toBe(false);
    expect(machineIn('closed').isAtLeast('disconnecting')).toBe(true);
    expect(new SessionStateMachine().isAtLeast('connecting')).toBe(false);
  });
});
