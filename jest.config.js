/** Tests run against the real local stack, one file at a time: they share its servers. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  testTimeout: 120_000,
  maxWorkers: 1,
  reporters: ['default', '<rootDir>/test/support/summaryReporter.js'],
};
