import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';

describe('control store migrations', () => {
  it('have strictly increasing, gap-free versions (two branches adding the same number collide)', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  });
});
