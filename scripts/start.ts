/**
 * `npm start`: the whole relay on 127.0.0.1 (local/stack.ts), until Ctrl-C. `npm start -- --help` lists the
 * options; docs/local-stack.md describes what runs.
 *
 * Ctrl-C closes every server, timer and socket and lets the process end by itself; so do SIGTERM and SIGHUP. A
 * second Ctrl-C (a little later: npm passes the first one on once more) stops at once.
 *
 * package.json runs this as `exec node --import tsx scripts/start.ts`: the shell npm starts a script with is
 * replaced by this process, so a signal sent to npm (`npm start & kill -INT $!`), which npm forwards to its child
 * only, reaches this process rather than a shell that would wait, or die and leave the stack running.
 *
 * @example
 * npm start -- --free-ports --json   # one JSON line with the URLs, the ports and this process's pid
 */
import { parseStartArgs, START_USAGE } from '../local/start-options.js';
import { startStack, type Stack } from '../local/stack.js';

/** A second signal sooner than this is the same Ctrl-C, delivered again by a parent process. */
const REPEAT_WINDOW_MS = 1500;
/** After a clean stop nothing should be left; if the process is still alive this long after, say what holds it. */
const EXIT_WATCHDOG_MS = 5000;

const parsed = parseStartArgs(process.argv.slice(2));
if ('help' in parsed) {
  process.stdout.write(START_USAGE);
} else if ('error' in parsed) {
  process.stderr.write(`npm start: ${parsed.error}\n\n${START_USAGE}`);
  process.exitCode = 2;
} else {
  const time = (): string => new Date().toISOString().slice(11, 23);
  let stack: Stack | undefined;
  let stoppingSince: number | undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < REPEAT_WINDOW_MS) return;
      process.stderr.write(`${signal} again: stopping now\n`);
      process.exit(130);
    }
    stoppingSince = Date.now();
    // Still starting: the stack is closed as soon as it is up (below).
    if (stack !== undefined) close(stack);
  };
  const close = (running: Stack): void => {
    process.stdout.write('stopping…\n');
    running.close().then(
      () => {
        process.stdout.write('stopped\n');
        setTimeout(() => {
          process.stderr.write(`still running after stop, held by: ${process.getActiveResourcesInfo().join(', ')}\n`);
          process.exit(1);
        }, EXIT_WATCHDOG_MS).unref();
      },
      (e: unknown) => {
        process.stderr.write(`stopping failed: ${(e as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  // Listening before anything starts, and before the ready line: a signal sent on seeing that line (or earlier)
  // must find the handler in place, not Node's default, which would end the process without closing anything.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // The terminal closing is a stop too.
  process.on('SIGHUP', stop);
  try {
    stack = await startStack({ ...parsed.options, ...(parsed.quiet ? {} : { log: (line) => process.stdout.write(`${time()} ${line}\n`) }) });
  } catch (e) {
    const hint =
      (e as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? ' (is another `npm start` running? `npm start -- --free-ports` picks free ports)'
        : '';
    process.stderr.write(`npm start: ${(e as Error).message}${hint}\n`);
    process.exitCode = 1;
  }
  if (stack !== undefined) {
    const running = stack;
    if (stoppingSince !== undefined) {
      close(running);
    } else {
      process.stdout.write(
        parsed.json
          ? `${JSON.stringify({ ...running.urls, caFile: running.caFile, ports: running.ports, pid: process.pid })}\n`
          : running.banner(),
      );
    }
  }
}
