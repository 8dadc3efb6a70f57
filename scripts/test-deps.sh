#!/usr/bin/env bash
# Before `npm test`: the system packages some tests drive as real peers. The cross-language test
# runs a Python gRPC client (Debian's python3-grpcio, python3-grpc-tools) and the load-balancer
# tests put haproxy in front of servers. Installs them with apt-get when it can (root on
# Debian or Ubuntu); otherwise stops at once with the one command that installs them.
set -euo pipefail

PACKAGES=(python3-grpcio python3-grpc-tools haproxy)
INSTALL="apt-get install -y ${PACKAGES[*]}"

has_python_grpc() {
  local python
  for python in "${PYTHON:-}" python3 /usr/bin/python3; do
    [[ -n "$python" ]] && "$python" -c 'import grpc, grpc_tools' 2>/dev/null && return 0
  done
  return 1
}

missing() {
  has_python_grpc || echo -n 'python3-grpcio python3-grpc-tools '
  command -v haproxy >/dev/null || echo -n 'haproxy'
}

[[ -z "$(missing)" ]] && exit 0

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  echo "test dependencies missing ($(missing)); installing: $INSTALL" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
  [[ -z "$(missing)" ]] && exit 0
  echo "still missing after apt-get: $(missing)" >&2
  exit 1
fi

echo "npm test needs system packages that are missing: $(missing)" >&2
echo "install them with: sudo $INSTALL" >&2
exit 1
