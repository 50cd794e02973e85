// mocha runs under tsx (scripts/bootstrap.mjs adds --import tsx).
module.exports = {
  require: ['test/env.ts', 'test/hooks.ts'],
  spec: ['test/**/*.test.ts'],
  reporter: './test/reporter.cjs',
  timeout: 20000,
  exit: true,
};
