/**
 * The sim's Patroni-like pool check, `GET /replica`: Patroni 3.0.2's status JSON (role,
 * state, timeline, xlog positions), 200 on a replica and 503 on the primary, so read pools
 * can be tested without PostgreSQL. The primary's WAL position is a fixed figure; a replica
 * replays `lagBytes` behind it.
 */
export const SIM_WAL_POSITION = 1_000_000_000;

export function replicaAnswer(
  role: 'primary' | 'backup',
  lagBytes: number,
): { status: number; body: string } {
  if (role === 'primary')
    return {
      status: 503,
      body: JSON.stringify({
        state: 'running',
        role: 'master',
        timeline: 1,
        xlog: { location: SIM_WAL_POSITION },
      }),
    };
  const replayed = SIM_WAL_POSITION - lagBytes;
  return {
    status: 200,
    body: JSON.stringify({
      state: 'running',
      role: 'replica',
      timeline: 1,
      xlog: { received_location: replayed, replayed_location: replayed, paused: false },
    }),
  };
}
