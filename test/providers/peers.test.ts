/** test/support/peers.ts: skip with a reason locally, fail under REGIONCTL_REQUIRE_PEERS=1. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { findProgram, requirePeer } from '../support/peers.js';

describe('requirePeer', () => {
  const saved = process.env.REGIONCTL_REQUIRE_PEERS;
  afterEach(() => {
    if (saved === undefined) delete process.env.REGIONCTL_REQUIRE_PEERS;
    else process.env.REGIONCTL_REQUIRE_PEERS = saved;
    vi.restoreAllMocks();
  });

  it('finds a program on PATH', () => {
    expect(findProgram('sh')).toMatch(/\/sh$/);
    expect(requirePeer('sh')).toMatch(/\/sh$/);
  });

  it('a missing program skips with a printed reason', () => {
    delete process.env.REGIONCTL_REQUIRE_PEERS;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(requirePeer('regionctl-no-such-program', 'apt-get install nothing')).toBeUndefined();
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('regionctl-no-such-program is not installed (apt-get install nothing'),
    );
  });

  it('a missing program fails under REGIONCTL_REQUIRE_PEERS=1', () => {
    process.env.REGIONCTL_REQUIRE_PEERS = '1';
    expect(() => requirePeer('regionctl-no-such-program')).toThrow(
      /REGIONCTL_REQUIRE_PEERS=1 but regionctl-no-such-program is not installed/,
    );
  });
});
