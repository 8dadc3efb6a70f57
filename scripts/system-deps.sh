#!/usr/bin/env bash
# The system packages a command needs, installed with apt-get when it can (root on Debian or
# Ubuntu); otherwise it stops at once with the one command that installs them.
#   system-deps.sh test   before `npm test`: a Python gRPC client (python3-grpcio,
#                         python3-grpc-tools) for the cross-language tests, haproxy for the
#                         load-balancer and cluster tests, and g++, pkg-config and
#                         libgrpc++-dev for the bench's smoke tests of its C++ load client;
#   system-deps.sh bench  before `npm run bench`: haproxy for the cluster figure, and g++,
#                         pkg-config and libgrpc++-dev for the C++ load client.
set -euo pipefail

has_python_grpc() {
  local python
  for python in "${PYTHON:-}" python3 /usr/bin/python3; do
    [[ -n "$python" ]] && "$python" -c 'import grpc, grpc_tools' 2>/dev/null && return 0
  done
  return 1
}
has_haproxy() { command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]]; }
has_grpc_cpp() { command -v g++ >/dev/null && command -v pkg-config >/dev/null && pkg-config --exists grpc++; }

case "${1:-}" in
  test) PACKAGES=(python3-grpcio python3-grpc-tools haproxy g++ pkg-config libgrpc++-dev); COMMAND='npm test' ;;
  bench) PACKAGES=(haproxy g++ pkg-config libgrpc++-dev); COMMAND='npm run bench' ;;
  *) echo "usage: $0 test|bench" >&2; exit 2 ;;
esac
INSTALL="apt-get install -y ${PACKAGES[*]}"

missing() {
  if [[ "$1" == test ]]; then has_python_grpc || echo -n 'python3-grpcio python3-grpc-tools '; fi
  has_haproxy || echo -n 'haproxy '
  has_grpc_cpp || echo -n 'g++ pkg-config libgrpc++-dev'
}

[[ -z "$(missing "$1")" ]] && exit 0

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  echo "$COMMAND: system packages missing ($(missing "$1")); installing: $INSTALL" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
  [[ -z "$(missing "$1")" ]] && exit 0
  echo "still missing after apt-get: $(missing "$1")" >&2
  exit 1
fi

echo "$COMMAND needs system packages that are missing: $(missing "$1")" >&2
echo "install them with: sudo $INSTALL" >&2
exit 1
