import { spawnSync } from 'node:child_process';

export const PYTHON_INSTALL = 'apt-get install -y python3-grpcio python3-grpc-tools';
/** `python3` first; Debian's own interpreter when `python3` is another one (pyenv) without grpc. */
const PYTHON_CANDIDATES = [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);

/** The first candidate python that can import grpc and grpc_tools' protoc, or a failure message. */
export function findPython(): { python: string } | { problem: string } {
  const tried: string[] = [];
  for (const python of [...new Set(PYTHON_CANDIDATES)]) {
    const probe = spawnSync(python, ['-c', 'import grpc, grpc_tools.protoc'], { encoding: 'utf8' });
    if (probe.status === 0) return { python };
    tried.push(`${python}: ${probe.error?.message ?? probe.stderr.trim().split('\n').at(-1)}`);
  }
  return { problem: `no python3 with grpc and grpc_tools (tried ${tried.join('; ')}). Run: ${PYTHON_INSTALL}` };
}
