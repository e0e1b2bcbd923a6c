/** `mirrorlb status`: placeholder until the terminal view lands (issue 3). */
export async function runStatus(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const url = argv[argv.indexOf('--admin') + 1] ?? 'http://127.0.0.1:9090';
  try {
    const res = await fetch(new URL('/status', argv.includes('--admin') ? url : 'http://127.0.0.1:9090'));
    out.write(`${JSON.stringify(await res.json(), null, 2)}\n`);
    return 0;
  } catch (e) {
    err.write(`mirrorlb status: ${(e as Error).message}\n`);
    return 1;
  }
}
