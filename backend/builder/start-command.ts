// Every image Rhone builds starts its app through this small bash "init", locally and on Fly.
//
// Why: Fly's init sends the stop signal to the machine's main process only (superfly/init-snapshot
// src/bin/init/main.rs: `kill(Pid::from_raw(pid), sig)`, a positive pid, no process group), and
// reboots the VM a second after that process exits. Railpack's images run the start command as
// `/bin/bash -c <start command>` (railpack buildkit/convert.go), and a start command such as
// `npm run start` puts npm and a dash `sh -c` between bash and the app: dash does not exec its
// command, dies of SIGTERM at once and never passes it on, so the app is killed with the VM
// without ever being told to drain its WebSockets. (Measured on hello-node: 200 of 200 clients
// dropped with close 1006.)
//
// The wrapper runs the start command as a job in a process group of its own (`set -m`), passes
// each stop signal on to that whole group, and after a stop waits until every process of the
// group has exited, so the main process, which Fly and the local runtime watch, ends last.
// When the app exits by itself (a crash), the wrapper exits at once with its status.

const FORWARDED = ['TERM', 'INT', 'HUP', 'QUIT', 'USR1', 'USR2'] as const;

/** The bash script that runs `startCommand` with signals forwarded to its whole process group. */
export function supervisedStart(startCommand: string): string {
  const traps = FORWARDED.map((sig) => `trap 'stopping=1; kill -s ${sig} -- "-$app" 2>/dev/null' ${sig}`).join('\n');
  return [
    '# rhone: run the start command in its own process group and pass stop signals on to all of it',
    'stopping=',
    'set -m',
    '{',
    startCommand,
    '} &',
    'app=$!',
    // Job control was needed only to give the job its own group; off again, bash prints no job notices.
    'set +m',
    traps,
    'wait "$app"; status=$?',
    // A trapped signal interrupts `wait`: keep waiting until the app and everything it started is gone.
    'while [ -n "$stopping" ] && kill -0 -- "-$app" 2>/dev/null; do wait "$app"; status=$?; sleep 0.1; done',
    'exit "$status"',
  ].join('\n');
}

/** The command an image runs: bash with the supervised start command, as Railpack's entrypoint is `bash -c`. */
export function imageCommand(startCommand: string): string[] {
  return ['bash', '-c', supervisedStart(startCommand)];
}
