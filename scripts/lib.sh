# Shared by scripts/*: install what a fresh Debian machine lacks.

# nats-server (Debian's package; JetStream is built in) for `flotilla up` and the tests.
ensure_nats_server() {
  export PATH="$PATH:/usr/sbin:/usr/local/sbin"
  if command -v nats-server >/dev/null 2>&1; then
    return
  fi
  echo "nats-server is missing; installing Debian's package" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
  command -v nats-server >/dev/null 2>&1 || { echo "nats-server still not found after install" >&2; exit 1; }
}
