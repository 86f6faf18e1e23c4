# Shared by scripts/*: install what a fresh Debian machine lacks.

# Installs Debian's package $2 when command $1 is missing.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "$1 is missing; installing Debian's package $2" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# nats-server (Debian's package; JetStream is built in) for `flotilla up` and the tests.
ensure_nats_server() {
  export PATH="$PATH:/usr/sbin:/usr/local/sbin"
  if command -v nats-server >/dev/null 2>&1; then
    return
  fi
  apt_install nats-server nats-server
  command -v nats-server >/dev/null 2>&1 || { echo "nats-server still not found after install" >&2; exit 1; }
}

# env-manager's SSH tests start a private sshd; without one they say they are skipped, so a
# failed install is a warning, not an error.
ensure_sshd() {
  if [ -x /usr/sbin/sshd ]; then
    return
  fi
  apt_install sshd openssh-server || true
  [ -x /usr/sbin/sshd ] || echo "warning: no sshd; the SSH GitOps tests will be skipped" >&2
}

# Prometheus (Debian's package) for the canary analysis tests, which start a private one on
# loopback scraping examples/ping.
ensure_prometheus() {
  if command -v prometheus >/dev/null 2>&1; then
    return
  fi
  apt_install prometheus prometheus
  command -v prometheus >/dev/null 2>&1 || { echo "prometheus still not found after install" >&2; exit 1; }
}

# kubectl renders deploy/ in the deploy tests (`kubectl kustomize`). It is not in Debian's own
# archive; where no apt source offers it the tests say they are skipped, so this only warns.
ensure_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then
    return
  fi
  apt_install kubectl kubectl || true
  command -v kubectl >/dev/null 2>&1 || echo "warning: no kubectl; the deploy/ rendering tests will be skipped" >&2
}
