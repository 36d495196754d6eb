export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fetch: not implemented yet\n');
  return 1;
}
