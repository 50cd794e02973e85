// mocha runs under tsx (scripts/bootstrap.mjs adds --import tsx). `npm test -- test/x.test.ts`
// runs just that file: the default spec applies only when no file is named.
const namesFiles = process.argv.slice(2).some((a) => /\.(test|int\.test)\.ts$/.test(a));

module.exports = {
  require: ['test/env.ts', 'test/hooks.ts'],
  ...(namesFiles ? {} : { spec: ['test/**/*.test.ts'] }),
  reporter: './test/reporter.cjs',
  timeout: 20000,
  exit: true,
};
