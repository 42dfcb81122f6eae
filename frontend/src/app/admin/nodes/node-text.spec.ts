import { USER } from '../../testing/http.testing';
import { deleteMessage, lastSeen } from './node-text';
import { BOB, PEOPLE, assignment, gpu, node } from './nodes.testing';

describe('node text', () => {
  const gpu01 = node('gpu-01');

  it('names the active assignments a delete ends, and their users', () => {
    const message = deleteMessage(
      gpu01,
      [
        assignment('a1', gpu01.id, USER.id, [gpu(0)]),
        assignment('a2', gpu01.id, BOB.id, [gpu(1)]),
        assignment('a3', gpu01.id, BOB.id, [], { status: 'expired' }),
        assignment('a4', 'elsewhere', BOB.id, []),
      ],
      PEOPLE,
    );
    expect(message).toBe(
      "This ends 2 active assignments: ada@lab.org, bob@lab.org. The node's certificate is revoked; the agent must enroll again to come back.",
    );
  });

  it('counts assignments, naming a user with two once', () => {
    const two = [assignment('a1', gpu01.id, USER.id, []), assignment('a2', gpu01.id, USER.id, [])];
    expect(deleteMessage(gpu01, two, PEOPLE)).toMatch(
      /^This ends 2 active assignments: ada@lab.org\. /,
    );
    expect(deleteMessage(gpu01, two.slice(1), PEOPLE)).toMatch(
      /^This ends 1 active assignment: ada@lab.org\. /,
    );
  });

  it('says when nothing runs there, and when the assignments could not be loaded', () => {
    expect(deleteMessage(gpu01, [], PEOPLE)).toMatch(
      /^No active assignment runs on it\. The node's certificate/,
    );
    expect(deleteMessage(gpu01, undefined, PEOPLE)).toMatch(/could not load them/);
  });

  it('says when the node was last seen', () => {
    const now = Date.parse('2030-01-01T00:03:10Z');
    expect(lastSeen({ last_seen_at: '2030-01-01T00:00:00Z' }, now)).toBe('Last seen 3 min ago');
    expect(lastSeen({ last_seen_at: '2030-01-01T00:03:05Z' }, now)).toBe('Last seen 5 s ago');
    expect(lastSeen({ last_seen_at: null }, now)).toBe('Never seen');
  });
});
