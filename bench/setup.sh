#!/usr/bin/env bash
# Installs what `npm run bench` needs that npm does not bring: wrk (load generator), h2load
# (HTTP/2 load generator, in nghttp2-client), caddy and nginx (the comparison proxies) and etcd
# (the etcd reload part). Debian packages, via apt-get, when missing.
set -euo pipefail
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
if [ ${#need[@]} -eq 0 ]; then
  echo "bench tools present: wrk, h2load, caddy, nginx, etcd, etcdctl"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${need[*]}. Run as root: apt-get update && apt-get install -y ${need[*]}" >&2
  exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
# Debian's caddy package may start a system caddy on :80/:2019; the bench runs its own on free ports.
