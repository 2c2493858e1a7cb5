#!/bin/sh
# Installs the peers the benchmark compares ringmesh with (nginx, HAProxy) and the
# load generator it drives them with (wrk), from the distribution's packages.
# `ringmesh-bench http` skips any peer that is missing; wrk is required. Debian's
# nginx-light and haproxy are built with OpenSSL (the TLS scenarios need no more);
# the openssl tool only records what wrk negotiates (`--tls`).
set -eu
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update
$SUDO apt-get install -y nginx-light libnginx-mod-stream haproxy wrk openssl
# The packages start system services we do not want competing for CPU.
$SUDO systemctl disable --now nginx haproxy 2>/dev/null || true
