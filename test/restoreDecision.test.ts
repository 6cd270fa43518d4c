// Who may approve a guarded restore: the rule every approve/reject signal and update goes through.
// A pure function, so this runs without the stack.
import { isOperatorName, judgeDecision, type DecisionContext } from '../src/shared/approval';

const waiting = (requestedBy: string, approvers: string[] = []): DecisionContext => ({
  policy: { approvers, twoPersonRule: true, approvalTimeout: '24 hours' },
  requestedBy,
  decided: false,
  awaiting: true,
});

const approveAs = (approver: string, ctx: DecisionContext) => judgeDecision('approve', { approver, reason: 'checked the plan' }, ctx);

describe('the two-person rule', () => {
  test.each([
    ['Alice', 'alice'],
    ['alice ', 'alice'],
    ['ａｌｉｃｅ', 'alice'], // fullwidth letters: a compatibility look-alike of "alice"
    ['alice', 'ALICE'],
    ['alice', ' Ａlice'],
  ])('a restore requested as %j cannot be approved by %j', (requestedBy, approver) => {
    const verdict = approveAs(approver, waiting(requestedBy));
    expect(verdict).toEqual({ ok: false, why: expect.stringContaining('two-person rule') });
  });

  test('someone else may approve, and is recorded under the name as typed, without look-alikes', () => {
    expect(approveAs('bob', waiting('alice'))).toEqual({ ok: true, request: { approver: 'bob', reason: 'checked the plan' } });
    expect(approveAs('ｂｏｂ', waiting('alice'))).toEqual({ ok: true, request: { approver: 'bob', reason: 'checked the plan' } });
  });

  test('the requester may still reject her own restore', () => {
    expect(judgeDecision('reject', { approver: 'alice', reason: 'wrong backup' }, waiting('Alice')).ok).toBe(true);
  });
});

describe('the approver allow-list (PGOPS_RESTORE_APPROVERS)', () => {
  test('matches names the way the two-person rule does', () => {
    expect(approveAs('bob', waiting('alice', ['Bob', 'carol'])).ok).toBe(true);
    expect(approveAs('Carol', waiting('alice', ['Bob', 'ｃａｒｏｌ'])).ok).toBe(true);
  });

  test('still refuses whoever is not on it', () => {
    expect(approveAs('mallory', waiting('alice', ['bob', 'carol']))).toEqual({ ok: false, why: expect.stringContaining('PGOPS_RESTORE_APPROVERS') });
  });
});

describe('who may ask for a restore', () => {
  test.each(['alice', 'Alice', ' alice ', 'ａｌｉｃｅ', 'ops.bot@example'])('%j is a name', (name) => {
    expect(isOperatorName(name)).toBe(true);
  });

  test.each(['', '   ', 'alice;drop', 'аlice' /* Cyrillic а: a look-alike NFKC keeps apart */, 42, undefined])('%j is not', (name) => {
    expect(isOperatorName(name)).toBe(false);
  });
});
